"""`sweeper validate` and `sweeper trial` as a user runs them: exit codes,
messages and the JSON line."""

import json
from pathlib import Path

import pytest

from sweeper.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = """\
name: tiny
method: {method}
dataset: {{name: synthetic, synthetic_train_size: 40, synthetic_test_size: 20}}
model: {{width: 4, hidden_dim: 16, projection_dim: 8}}
train: {{epochs: 2, batch_size: 16, warmup_epochs: 1, optimizer: adamw, learning_rate: 0.01}}
eval: {{protocol: offline_linear, probe_max_iter: 20}}
search:
  params:
    {axis}: [{values}]
"""
# Each method sweeps a setting it reads (sweeping the other's would be refused).
AXES = {"simclr": ("temperature", [0.2, 0.5]), "byol": ("ema_decay", [0.9, 0.99])}


def tiny(method: str) -> str:
    axis, values = AXES[method]
    return TINY.format(method=method, axis=axis, values=", ".join(map(str, values)))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_validate_prints_a_one_line_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "search_spaces" / "simclr_grid.yaml")]) == 0
    assert capsys.readouterr().out == (
        "32 trials: grid over batch_size × temperature × color_jitter_strength\n")


def test_validate_bad_spec_exits_2_with_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, "name: x\ntrain:\n  temperature: -0.5\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "line 3: train.temperature" in err and "-0.5" in err
    assert "Traceback" not in err


@pytest.mark.integration
@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_trial_json_is_the_last_line(
        method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, tiny(method))
    assert main(["trial", str(spec), "--index", "1", "--json", "--set", "train.epochs=1"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["trial"] == 1
    axis, values = AXES[method]
    assert result["params"] == {axis: values[1], "seed": 0}
    assert result["steps"] == 3  # 1 epoch x ceil(40 / 16)
    assert 0 <= result["top_1_accuracy"] <= 1
    assert result["top_1_accuracy"] == result["offline_linear_top_1_accuracy"]
    assert "epoch 1/1" in captured.err


def test_trial_user_mistakes_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write(tmp_path, tiny("simclr"))
    assert main(["trial", str(spec), "--index", "7"]) == 2
    assert "out of range" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["trial", str(spec), "--set", "dataset.name=image_folder",
                 "--set", f"dataset.root={missing}"]) == 2
    assert str(missing) in capsys.readouterr().err
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["trial", str(spec), "--set", "resources.gpu=1"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert main(["trial", str(spec), "--set", "train.batch_size=zero"]) == 2
    assert "train.batch_size" in capsys.readouterr().err


def test_unknown_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
