"""What travels to a Ray cluster with a sweep.

`sweeper run --address` ships the project's own packages (Ray's `py_modules`), so
that every node imports the driver's copy of the code whether or not it has the
project installed; a node still needs the third-party dependencies (torch, Ray, ...),
as the docker/ image has them.

`sweeper submit` uploads an allow-list, never "the working directory minus some
names": a staging folder holding exactly the project's Python sources, the spec and
the data files the spec names under the working directory (`plan_upload`, `stage`).
Dotfiles, keys, credentials and stores never go, whatever else sits in the folder.
Links are judged by where they lead: a file or folder whose real path is outside the
project (a data image linked to ~/.ssh/id_rsa, a train/ folder linked to /datasets),
or that leads to a name never uploaded, refuses the upload (`Upload.refused`), rather
than uploading it or quietly shipping part of a dataset.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import sweeper
import trainers
from trainers.config import DatasetConfig
from trainers.data import IMG_EXTENSIONS

# Never uploaded by `run --address`: environments, results, local stores, caches, checkpoints.
UPLOAD_EXCLUDES = [".venv", ".git", "results", "mlruns", "mlflow.db", "data", "test-artifacts",
                   "__pycache__", "*.pt", "*.egg-info"]

# Never staged by `submit`, even where a data folder holds them (besides every dotfile and
# dot-folder): keys, credentials, secrets, databases.
NEVER_UPLOADED = ("id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.pem", "*.key", "*.p12",
                  "*.pfx", "credentials", "credentials.*", "secrets*", "*.env", "*.db",
                  "*.sqlite", "*.sqlite3", "*.netrc", "*.kdbx")
CIFAR10_FOLDER = "cifar-10-batches-py"  # torchvision's extracted CIFAR-10


def project_modules() -> list[str]:
    """The folders of the project's packages, as Ray's runtime_env py_modules takes them."""
    return [str(Path(package.__file__ or "").parent) for package in (sweeper, trainers)]


def never_uploaded(relative: PurePosixPath) -> bool:
    """A dotfile, something under a dot-folder, or a name on NEVER_UPLOADED."""
    return (any(part.startswith(".") for part in relative.parts)
            or any(fnmatch.fnmatch(relative.name.lower(), pattern)
                   for pattern in NEVER_UPLOADED))


@dataclass
class Upload:
    """What `sweeper submit` uploads: staged path (working_dir/..., py_modules/...) ->
    the source file; plus notes on what the spec names but is not uploaded."""

    files: dict[str, Path] = field(default_factory=dict)
    data: set[str] = field(default_factory=set)  # staged paths of data files (symlinked)
    notes: list[str] = field(default_factory=list)
    # Links that lead out of the project or to a name never uploaded: "path why; fix".
    refused: list[str] = field(default_factory=list)

    def total_bytes(self) -> int:
        return sum(source.stat().st_size for source in self.files.values())

    def listing(self) -> list[str]:
        """One staged path per line, then the total (what `submit --dry-run` prints)."""
        size = self.total_bytes()
        return [*sorted(self.files), f"total: {len(self.files)} files, {_human(size)}"]


def plan_upload(spec: Path, workdir: Path, datasets: Iterable[DatasetConfig]) -> Upload:
    """The allow-list for a job run from `workdir`: the project's sources as py_modules,
    the spec (at its path relative to `workdir`, where the entrypoint finds it) and, for
    a dataset.root that is a relative path inside `workdir`, the files trials read."""
    upload = Upload()
    for folder in project_modules():
        package = Path(folder)
        for source in sorted(package.rglob("*.py")):
            relative = PurePosixPath(source.relative_to(package.parent).as_posix())
            if any(part.startswith((".", "__pycache__")) for part in relative.parts):
                continue
            refusal = _link_refusal(source, package.resolve(), "replace the link by the file")
            if refusal:
                upload.refused.append(f"{source} {refusal}")
            else:
                upload.files[f"py_modules/{relative}"] = source
    workdir = workdir.resolve()
    upload.files[f"working_dir/{spec.resolve().relative_to(workdir).as_posix()}"] = spec.resolve()
    for dataset in sorted(set(datasets), key=lambda d: (d.name, d.root or "")):
        if dataset.name == "synthetic" or dataset.root is None:
            continue
        root = Path(dataset.root).expanduser()
        # The root as the spec names it (the job looks there), not where its links lead.
        written = Path(os.path.normpath(workdir / root))
        if root.is_absolute() or not written.resolve().is_relative_to(workdir):
            upload.notes.append(
                f"dataset.root {dataset.root} is not uploaded (only a relative path inside "
                f"{workdir} is): it must exist at that path on every node of the cluster")
            continue
        found = _dataset_files(dataset, written, workdir, upload.refused)
        if not found:
            upload.notes.append(f"dataset.root {dataset.root}: no {dataset.name} files found "
                                "to upload" + (" (the job downloads CIFAR-10)"
                                               if dataset.download else ""))
        for source in found:
            relative = PurePosixPath(source.relative_to(workdir).as_posix())
            if never_uploaded(PurePosixPath(source.relative_to(written).as_posix())):
                continue
            if _allowed(source, workdir, upload.refused):
                upload.files[f"working_dir/{relative}"] = source
                upload.data.add(f"working_dir/{relative}")
    return upload


_DATA_FIX = "copy the files in, or name an absolute dataset.root that every node has"


def _link_refusal(path: Path, inside: Path, fix: str = _DATA_FIX) -> str:
    """Why `path`, through its links, may not be uploaded from the folder `inside` (a
    real path), and the fix; "" when it may: it leads inside, and not to a secret."""
    real = path.resolve()
    if not real.is_relative_to(inside):
        return f"links outside {inside}, and submit uploads only what is inside it; {fix}"
    if never_uploaded(PurePosixPath(real.relative_to(inside).as_posix())):
        return f"links to {real.relative_to(inside)}, which is never uploaded; remove the link"
    return ""


def _allowed(path: Path, workdir: Path, refused: list[str]) -> bool:
    refusal = _link_refusal(path, workdir)
    if refusal:
        refused.append(f"{path.relative_to(workdir)} {refusal}")
    return not refusal


def _dataset_files(dataset: DatasetConfig, root: Path, workdir: Path, refused: list[str]
                   ) -> list[Path]:
    """What a trial reads under `root`: train/ and test/ images, or CIFAR-10's batches.
    A folder linked out of `workdir` is not entered but added to `refused`; a folder
    reached twice through links is entered once (no loop)."""
    if dataset.name == "cifar10":
        folder = root / CIFAR10_FOLDER
        if not folder.is_dir() or not _allowed(folder, workdir, refused):
            return []
        return sorted(p for p in folder.iterdir() if p.is_file())
    found: list[Path] = []
    entered: set[Path] = set()
    for split in ("train", "test"):
        top = root / split
        if not top.is_dir() or not _allowed(top, workdir, refused):
            continue
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            entered.add(Path(dirpath).resolve())
            dirnames[:] = [name for name in sorted(dirnames)
                           if not name.startswith(".")
                           and _allowed(Path(dirpath) / name, workdir, refused)
                           and (Path(dirpath) / name).resolve() not in entered]
            found += [Path(dirpath) / name for name in sorted(filenames)
                      if name.lower().endswith(IMG_EXTENSIONS)]
    return found


def stage(upload: Upload, into: Path) -> tuple[str, list[str]]:
    """Lay the upload out under `into` (sources copied, data files symlinked: Ray
    uploads a link's content); returns (working_dir, py_modules) for the runtime_env."""
    for staged, source in upload.files.items():
        target = into / staged
        target.parent.mkdir(parents=True, exist_ok=True)
        if staged in upload.data:  # big and many: linked, not copied
            target.symlink_to(source.resolve())
        else:
            shutil.copy2(source, target)
    (into / "working_dir").mkdir(exist_ok=True)
    modules = sorted(str(p) for p in (into / "py_modules").iterdir())
    return str(into / "working_dir"), modules


def _human(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"
