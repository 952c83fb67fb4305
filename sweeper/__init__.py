"""sweeper: hyperparameter sweeps for self-supervised learning (SimCLR, BYOL) with
Ray Tune and MLflow. The command line is `sweeper` (sweeper.cli); the library
call a user needs is `sweeper.load_encoder(run_id)`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainers.models import ResNet


def load_encoder(run_id: str, tracking_uri: str | None = None) -> ResNet:
    """A finished trial run's final encoder from MLflow (see sweeper.record.encoders)."""
    from sweeper.record.encoders import load_encoder as load  # torch and MLflow only when called

    return load(run_id, tracking_uri)
