"""The method registry: every self-supervised method the spec's `method` may name, with
what the rest of the code needs to know about it (`MethodInfo`).

It imports neither torch nor anything of the project, so validating a spec stays light
and the config can check `method` against it; a method's class is imported when a trial
builds it (`trainers.method.build_method`). Adding a method: its module (an `SSLMethod`
subclass, trainers.method) and one `MethodInfo` line in `METHODS`.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Literal

FEATURE_DIM: Literal["feature_dim"] = "feature_dim"  # a head as wide as the encoder's output
DEFAULT_VIEWS = 2  # SimCLR's and BYOL's two augmented views of each image


@dataclass(frozen=True)
class Heads:
    """A method's projection-head sizes as its paper states them: what `model.hidden_dim`
    and `model.projection_dim` mean when the spec leaves them unset."""

    hidden_dim: int | Literal["feature_dim"]
    projection_dim: int


@dataclass(frozen=True)
class MethodInfo:
    """One method: its spec name, its class, its head defaults, its views and the
    settings only it reads."""

    name: str
    cls: str  # "module:Class", an SSLMethod subclass, imported when a trial builds it
    heads: Heads | None  # None: none declared, so the spec must set both head sizes
    views: int = DEFAULT_VIEWS  # augmented views per training image (SSLMethod.views)
    # TrainConfig fields that only this method reads; for another method they do nothing.
    uses: frozenset[str] = field(default_factory=frozenset)

    def head_dims(self, hidden_dim: int | None, projection_dim: int | None,
                  feature_dim: int) -> tuple[int, int]:
        """(hidden, output) sizes of the projection head: the spec's model.hidden_dim and
        model.projection_dim where set, else this method's defaults."""
        if hidden_dim is not None and projection_dim is not None:
            return hidden_dim, projection_dim
        if self.heads is None:
            raise ValueError(f"method {self.name!r} declares no head sizes: set "
                             "model.hidden_dim and model.projection_dim")
        default_hidden = (feature_dim if self.heads.hidden_dim == FEATURE_DIM
                          else self.heads.hidden_dim)
        return (hidden_dim if hidden_dim is not None else default_hidden,
                projection_dim if projection_dim is not None else self.heads.projection_dim)

    def load(self) -> type:
        """The method's class (trainers.method.build_method checks it is an SSLMethod)."""
        module, _, name = self.cls.partition(":")
        loaded: type = getattr(importlib.import_module(module), name)
        return loaded


METHODS: dict[str, MethodInfo] = {
    # SimCLR (Chen et al. 2020): the hidden layer as wide as the features, z of 128.
    "simclr": MethodInfo("simclr", "trainers.simclr:SimCLR", Heads(FEATURE_DIM, 128),
                         uses=frozenset({"temperature"})),
    # BYOL (Grill et al. 2020): projector and predictor 4096 wide, z of 256.
    "byol": MethodInfo("byol", "trainers.byol:BYOL", Heads(4096, 256),
                       uses=frozenset({"ema_decay"})),
}


def method_names() -> list[str]:
    """The registered methods, in registry order."""
    return list(METHODS)


def choices(name: str) -> str:
    """"'simclr' or 'byol'" and a did-you-mean for `name`: the tail of an unknown-method
    message."""
    names = [repr(n) for n in METHODS]
    listed = " or ".join(names) if len(names) <= 2 else f"{', '.join(names[:-1])} or {names[-1]}"
    close = difflib.get_close_matches(name, list(METHODS), n=1)
    return listed + (f" (did you mean {close[0]!r}?)" if close else "")


def method_info(name: str) -> MethodInfo:
    """The registry entry of `name`; a ValueError naming the choices if there is none."""
    info = METHODS.get(name)
    if info is None:
        raise ValueError(f"unknown method {name!r}: choose {choices(name)}")
    return info


def method_specific_fields() -> frozenset[str]:
    """Every TrainConfig field that some method alone reads (the union of `uses`)."""
    return frozenset().union(*(info.uses for info in METHODS.values()))

