"""Where a sweep's results live: a local folder, or a URI (s3://, gs://, ...) that Ray
Tune reads and writes through pyarrow, so that every node of a cluster reaches it.
S3-compatible stores (MinIO) take their endpoint and keys from the usual AWS
variables: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError


class StorageError(SweeperError):
    """The results storage cannot be read (no such bucket, no credentials, a file)."""


def is_uri(storage: str | Path) -> bool:
    return "://" in str(storage)


def resolve(storage: str | Path) -> str:
    """An absolute local path, or the URI as given (without a trailing slash)."""
    return str(storage).rstrip("/") if is_uri(storage) else str(Path(storage).resolve())


def sweep_location(storage: str | Path, name: str) -> str:
    return f"{resolve(storage)}/{name}"


@contextlib.contextmanager
def opened(location: str) -> Iterator[tuple[Any, str]]:
    """pyarrow's filesystem and path for `location`; its errors become StorageError."""
    import pyarrow
    import pyarrow.fs as pafs

    try:
        yield pafs.FileSystem.from_uri(location)
    except (OSError, pyarrow.ArrowException) as exc:
        raise StorageError(f"cannot read the results storage {location}: {exc}") from None


def check_bucket(storage: str | Path) -> None:
    """Before anything is written: a URI's bucket exists and the credentials can see it
    (Tune would only fail on it after the sweep had started); a local root is a folder
    this process can write to, or can be created (check_writable_folder)."""
    if not is_uri(storage):
        check_writable_folder(Path(resolve(storage)))
        return
    from pyarrow.fs import FileType

    root = resolve(storage)
    with opened(root) as (fs, path):
        bucket = path.split("/", 1)[0]
        found = fs.get_file_info(bucket).type == FileType.Directory
    if not found:
        raise StorageError(f"the results storage {root}: bucket {bucket!r} does not exist "
                           "(or these credentials cannot see it); create it first")


def check_writable_folder(root: Path) -> None:
    """`root` is a folder that takes a new file, or its nearest existing parent is one
    (Tune creates the rest). Probed by creating and deleting a file, since permission
    bits say nothing on a read-only mount, to root, or under ACLs."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == root else f"is under {existing}, a file"
        raise StorageError(f"the results storage {root} {what}, not a folder: pass --storage "
                           "a folder (it is created if missing)")
    try:
        probe, name = tempfile.mkstemp(prefix=".sweeper-write-probe-", dir=existing)
        os.close(probe)
        os.unlink(name)
    except OSError as exc:
        where = "" if existing == root else f" (it would be created in {existing})"
        raise StorageError(
            f"the results storage {root} is not writable{where}: {exc.strerror or exc}; "
            "pass --storage a folder you can write to") from None


def holds_files(location: str) -> bool:
    """Whether the folder at `location` exists and is not empty."""
    from pyarrow.fs import FileSelector, FileType

    with opened(location) as (fs, path):
        kind = fs.get_file_info(path).type
        if kind == FileType.NotFound:
            return False
        if kind != FileType.Directory:
            raise StorageError(f"the results storage {location} is a file, not a folder")
        return bool(fs.get_file_info(FileSelector(path)))
