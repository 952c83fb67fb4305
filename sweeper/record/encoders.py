"""Trained encoders kept in MLflow: a finished trial's final encoder, taken from its
last checkpoint, goes to its run as the artifact folder `encoder/` (weights and the
trial's config), and `load_encoder(run_id)` builds it back:

    import sweeper
    encoder = sweeper.load_encoder("RUN_ID", tracking_uri="sqlite:///mlflow.db")
    features = encoder(images)  # [N, 3, 32, 32] floats -> [N, feature_dim]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from trainers.checkpoint import checkpoint_weights, load_checkpoint
from trainers.config import TrialConfig
from trainers.models import ResNet, build_encoder

ARTIFACT_DIR = "encoder"
WEIGHTS, CONFIG = "encoder.pt", "config.json"
_PREFIX = "encoder."  # the encoder's keys in a method's state dict (SimCLR and BYOL alike)


def export_encoder(checkpoint_file: Path, config: TrialConfig, folder: Path) -> Path:
    """Write the encoder of a trial checkpoint to `folder` (weights + config)."""
    state = load_checkpoint(checkpoint_file)
    weights = {key[len(_PREFIX):]: value for key, value in checkpoint_weights(state).items()
               if key.startswith(_PREFIX)}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(weights, folder / WEIGHTS)
    (folder / CONFIG).write_text(json.dumps(config.model_dump(mode="json"), indent=1))
    return folder


def encoder_from_folder(folder: Path) -> ResNet:
    """The encoder saved by `export_encoder`, in eval mode on the CPU."""
    config = TrialConfig.model_validate_json((folder / CONFIG).read_text())
    encoder = build_encoder(config.model)
    encoder.load_state_dict(torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True))
    return encoder.eval()


def load_encoder(run_id: str, tracking_uri: str | None = None) -> ResNet:
    """A trial run's final encoder from MLflow (its `encoder/` artifact)."""
    from mlflow.artifacts import download_artifacts

    from sweeper.record.store import resolve_tracking_uri

    with tempfile.TemporaryDirectory(prefix="sweeper-encoder-") as scratch:
        local = download_artifacts(run_id=run_id, artifact_path=ARTIFACT_DIR, dst_path=scratch,
                                   tracking_uri=resolve_tracking_uri(tracking_uri))
        return encoder_from_folder(Path(local))
