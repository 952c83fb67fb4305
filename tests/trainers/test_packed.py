"""A state dict packed as one flat tensor per dtype (trainers.packed) comes back whole:
names in order, shapes, dtypes and values, each tensor with its own storage."""

from pathlib import Path

import torch

from trainers.packed import pack, unpack


def test_pack_unpack_round_trips_mixed_dtypes_and_shapes(tmp_path: Path) -> None:
    weights = {
        "conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),  # 0-d
        "bn.bias": torch.tensor([0.5, -1.5]),
        "empty": torch.zeros(0, 4),
        "half": torch.tensor([1.0, 2.0], dtype=torch.float16),
    }
    packed = pack(weights)
    assert sorted(packed["data"]) == ["float16", "float32", "int64"]
    assert packed["data"]["float32"].shape == (24 + 2,)  # the empty tensor adds nothing
    torch.save(packed, tmp_path / "packed.pt")
    back = unpack(torch.load(tmp_path / "packed.pt", weights_only=True))

    assert list(back) == list(weights)
    for name, tensor in weights.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        assert torch.equal(back[name], tensor)
    back["bn.bias"][0] = 9.0  # its own storage: the others are untouched
    assert back["conv.weight"].untyped_storage().size() == 24 * 4
    assert torch.equal(unpack(packed)["bn.bias"], weights["bn.bias"])


def test_an_empty_state_dict_packs_to_nothing() -> None:
    assert pack({}) == {"layout": [], "data": {}}
    assert unpack(pack({})) == {}
