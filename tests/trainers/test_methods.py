"""The method registry: one entry names a method everywhere (the config's check, its head
sizes, its views, the fields only it reads), a method registered here alone trains through
`fit`, and the registry imports no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

import trainers.methods
from trainers.byol import BYOL
from trainers.config import (
    DatasetConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    TrialConfig,
)
from trainers.loop import fit
from trainers.method import SSLMethod, build_method
from trainers.methods import (
    FEATURE_DIM,
    Heads,
    MethodInfo,
    method_info,
    method_names,
    method_specific_fields,
)
from trainers.models import build_encoder, mlp
from trainers.simclr import SimCLR

ROOT = Path(__file__).resolve().parents[2]


class ThreeViews(SSLMethod):
    """A method that lives in this test file only: three views, each view's projection
    pulled towards the mean of the three."""

    built: ClassVar[list[ThreeViews]] = []  # every instance, for the test to inspect

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 info: MethodInfo) -> None:
        super().__init__(model_cfg, train_cfg, info)
        self.encoder = build_encoder(model_cfg)
        hidden, out = info.head_dims(model_cfg.hidden_dim, model_cfg.projection_dim,
                                     self.encoder.feature_dim)
        self.projector = mlp(self.encoder.feature_dim, hidden, out)
        self.batch_rows: list[int] = []
        ThreeViews.built.append(self)

    def loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.batch_rows.append(views.shape[0])
        h = self.encoder(views)
        z = F.normalize(self.projector(h).float(), dim=1)
        z = z.view(self.info.views, -1, z.shape[1])
        return (z - z.mean(dim=0, keepdim=True)).pow(2).sum(dim=2).mean(), h

    def trainable(self) -> list[nn.Module]:
        return [self.encoder, self.projector]

    def networks(self) -> tuple[nn.Module, nn.Module | None]:
        return nn.Sequential(self.encoder, self.projector), None


THREE_VIEWS = MethodInfo("three_views", f"{__name__}:ThreeViews", Heads(32, 8), views=3)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> MethodInfo:
    monkeypatch.setitem(trainers.methods.METHODS, THREE_VIEWS.name, THREE_VIEWS)
    return THREE_VIEWS


def test_a_method_registered_in_a_test_trains_through_fit(registered: MethodInfo) -> None:
    ThreeViews.built.clear()
    cfg = TrialConfig(
        method="three_views",
        dataset=DatasetConfig(name="synthetic", synthetic_train_size=40, synthetic_test_size=20),
        model=ModelConfig(width=4),
        train=TrainConfig(epochs=1, batch_size=16, warmup_epochs=0, optimizer="adamw",
                          learning_rate=1e-3),
        eval=EvalConfig(probe_max_iter=5, knn_k=5),
    )
    final = fit(cfg)
    (method,) = ThreeViews.built
    # Its head sizes are its own entry's (32 hidden, 8 out); ceil(40 / 16) = 3 steps of
    # 16, 16 and 8 images, each as three views.
    assert [layer.out_features for layer in method.projector if isinstance(layer, nn.Linear)
            ] == [32, 8]
    assert method.batch_rows == [48, 48, 24]
    assert final["epoch"] == 1 and final["steps"] == 3
    assert torch.isfinite(torch.tensor(final["loss"]))
    assert 0 <= final["top_1_accuracy"] <= 1


def test_the_config_accepts_exactly_the_registered_methods(registered: MethodInfo) -> None:
    assert TrialConfig(method="three_views").method == "three_views"
    with pytest.raises(ValidationError, match=r"must be 'simclr', 'byol' or 'three_views' "
                                              r"\(did you mean 'byol'\?\)"):
        TrialConfig(method="bypl")


def test_an_unknown_method_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ValidationError) as caught:
        TrialConfig(method="simclrr")
    (error,) = caught.value.errors()
    assert error["loc"] == ("method",)
    assert error["msg"] == "Value error, must be 'simclr' or 'byol' (did you mean 'simclr'?)"
    with pytest.raises(ValidationError) as caught:
        TrialConfig.model_validate({"method": "moco"})
    assert caught.value.errors()[0]["msg"] == "Value error, must be 'simclr' or 'byol'"
    with pytest.raises(ValueError, match=r"^unknown method 'moco': choose 'simclr' or 'byol'$"):
        method_info("moco")
    with pytest.raises(ValidationError, match="valid string"):
        TrialConfig.model_validate({"method": 3})  # strict: no coercion


@pytest.mark.parametrize(("method", "cls", "hidden", "out"), [
    ("simclr", SimCLR, 64, 128),  # SimCLR: hidden = the feature dim (width 8: 64), z 128
    ("byol", BYOL, 4096, 256),  # BYOL: 4096 and 256, the predictor too
])
def test_head_defaults_are_the_papers(method: str, cls: type[SSLMethod], hidden: int,
                                      out: int) -> None:
    built = build_method(method, ModelConfig(width=8), TrainConfig())
    assert type(built) is cls and built.info is method_info(method)
    heads = [built.projector] + ([built.predictor] if isinstance(built, BYOL) else [])
    for head in heads:
        linears = [layer for layer in head if isinstance(layer, nn.Linear)]
        assert [(lin.in_features, lin.out_features) for lin in linears] == [
            (head[0].in_features, hidden), (hidden, out)]
    assert built.projector[0].in_features == 64
    assert method_info("simclr").heads == Heads(FEATURE_DIM, 128)
    assert method_info("byol").heads == Heads(4096, 256)


def test_the_spec_head_sizes_override_the_defaults() -> None:
    simclr, byol = method_info("simclr"), method_info("byol")
    assert simclr.head_dims(None, None, 512) == (512, 128)
    assert simclr.head_dims(100, None, 512) == (100, 128)
    assert byol.head_dims(None, 64, 512) == (4096, 64)
    assert byol.head_dims(10, 20, 512) == (10, 20)


def test_a_method_without_head_defaults_needs_both_sizes_never_borrows_any() -> None:
    bare = MethodInfo("bare", "nowhere:Nothing", heads=None)
    assert bare.head_dims(10, 20, 512) == (10, 20)
    for hidden, out in ((None, None), (10, None), (None, 20)):
        with pytest.raises(ValueError, match=r"'bare' declares no head sizes: set "
                                               r"model\.hidden_dim and model\.projection_dim"):
            bare.head_dims(hidden, out, 512)


def test_build_method_refuses_a_class_that_is_no_ssl_method(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(trainers.methods.METHODS, "module",
                        MethodInfo("module", "torch.nn:Linear", Heads(8, 8)))
    with pytest.raises(TypeError, match=r"torch\.nn:Linear is not an SSLMethod subclass"):
        build_method("module", ModelConfig(width=4), TrainConfig())


def test_uses_names_the_train_fields_only_that_method_reads() -> None:
    assert method_names() == ["simclr", "byol"]
    assert method_info("simclr").uses == {"temperature"}
    assert method_info("byol").uses == {"ema_decay"}
    assert method_specific_fields() == {"temperature", "ema_decay"}
    for name in method_names():
        assert method_info(name).name == name  # the entry's name is its key
        assert method_info(name).uses <= TrainConfig.model_fields.keys(), name
        assert method_info(name).views == 2, name


@pytest.mark.integration
def test_the_registry_imports_no_torch() -> None:
    """`sweeper validate` checks `method` against the registry: that must stay light."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, trainers.methods, trainers.config; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')))"],
        capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
