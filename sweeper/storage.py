"""Where a sweep's results live: a local folder, or a URI (s3://, gs://, ...) that Ray
Tune reads and writes through pyarrow, so that every node of a cluster reaches it.
S3-compatible stores (MinIO) take their endpoint and keys from the usual AWS
variables: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY."""

from __future__ import annotations

from pathlib import Path

from sweeper.spec import SpecError


class StorageError(SpecError):
    """The results storage cannot be read (no such bucket, no credentials, a file)."""


def is_uri(storage: str | Path) -> bool:
    return "://" in str(storage)


def resolve(storage: str | Path) -> str:
    """An absolute local path, or the URI as given (without a trailing slash)."""
    return str(storage).rstrip("/") if is_uri(storage) else str(Path(storage).resolve())


def sweep_location(storage: str | Path, name: str) -> str:
    return f"{resolve(storage)}/{name}"


def check_bucket(storage: str | Path) -> None:
    """For a URI, that its bucket exists and the credentials can see it: Tune would
    only fail on it after the sweep had started. A local root is created on demand."""
    if not is_uri(storage):
        return
    import pyarrow
    import pyarrow.fs as pafs

    root = resolve(storage)
    try:
        fs, path = pafs.FileSystem.from_uri(root)
        bucket = path.split("/", 1)[0]
        found = fs.get_file_info(bucket).type == pafs.FileType.Directory
    except (OSError, pyarrow.ArrowException) as exc:
        raise StorageError(f"cannot read the results storage {root}: {exc}") from None
    if not found:
        raise StorageError(f"the results storage {root}: bucket {bucket!r} does not exist "
                           "(or these credentials cannot see it); create it first")


def holds_files(location: str) -> bool:
    """Whether the folder at `location` exists and is not empty."""
    import pyarrow
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(location)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            return False
        if info.type != pafs.FileType.Directory:
            raise StorageError(f"the results storage {location} is a file, not a folder")
        return bool(fs.get_file_info(pafs.FileSelector(path)))
    except (OSError, pyarrow.ArrowException) as exc:
        raise StorageError(f"cannot read the results storage {location}: {exc}") from None
