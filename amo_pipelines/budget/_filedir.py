"""Where the machine-wide store keeps its files, and what it keeps of each open one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ._filestate import State

__all__ = ["ENV_DIRECTORY", "File", "close_all", "default_directory", "private_directory"]

ENV_DIRECTORY = "AMO_PIPELINES_STATE_DIR"


def default_directory() -> Path:
    """``$AMO_PIPELINES_STATE_DIR``, else ``$XDG_RUNTIME_DIR/amo_pipelines``, else
    ``<temp dir>/amo_pipelines-<uid>``: private to the user, so that another user can
    neither read which accounts are used nor tamper with their budget."""
    explicit = os.environ.get(ENV_DIRECTORY)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "amo_pipelines"
    return Path(tempfile.gettempdir()) / f"amo_pipelines-{os.getuid()}"


def private_directory(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{path} must belong to this user and be private (mode 0700); "
            f"set {ENV_DIRECTORY} to another folder"
        )


class File:
    """An account's open file, and what this store last saw in it."""

    __slots__ = ("fd", "size", "stamp", "state")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0  # bytes last read or written: how much to read next time
        self.stamp = b""  # the stamp of the state last read or written ...
        self.state: State | None = None  # ... and that state, decoded


def close_all(files: dict[str, File]) -> None:
    for file in files.values():
        with contextlib.suppress(OSError):
            os.close(file.fd)
    files.clear()
