"""`sweeper run` checks the image folder the trials will read before Ray starts:
a broken tree ends with exit 2 and one line naming the path, not with every
trial failing one by one (tests/trainers/test_data.py covers each defect)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .conftest import tiny_sweep

pytestmark = pytest.mark.integration


def test_an_empty_class_folder_stops_the_sweep_before_ray_starts(workdir: Path) -> None:
    root = workdir / "data"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            if (split, name) != ("test", "dog"):
                Image.new("RGB", (8, 8), (9, 9, 9)).save(root / split / name / "0.png")
    (workdir / "spec.yaml").write_text(
        tiny_sweep("badData", "search:\n  params:\n    seed: [0]\n")
        .replace("{name: synthetic,", "{name: image_folder, root: data,"))
    done = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "spec.yaml"],
                          cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"sweeper: no images in {root / 'test' / 'dog'}: add images")
    assert "Traceback" not in done.stderr and "Ray" not in done.stderr
    assert not (workdir / "results").exists()
