"""Where the machine-wide store keeps its files, and what it keeps of each open one."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ._filestate import SLACK, STAMP, State, answer, dump, forget, load

if TYPE_CHECKING:
    from ._pool import Entry

try:  # POSIX only (the store refuses to start without it)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_T = TypeVar("_T")

__all__ = [
    "ENV_DIRECTORY",
    "File",
    "close_all",
    "default_directory",
    "locked",
    "private_directory",
]

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


def locked(
    file: File,
    boot: bytes,
    stamp: int,
    change: Callable[[State, float], tuple[_T, bool]],
    answers: list[Entry] | None,
    unused: list[Entry] | None,
) -> tuple[_T, int]:
    """Run ``change`` on ``file``'s state under its lock, record ``answers`` and forget
    ``unused`` places there, and write the state if anything changed. Returns the result
    and the writer's stamp counter (``stamp``, moved on by a write)."""
    fd = file.fd
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        now = time.monotonic()
        # One pread of what the file held last time plus some: no fstat needed.
        want = file.size + SLACK
        data = os.pread(fd, want, 0)
        while len(data) == want:  # a peer wrote more than that
            want *= 4
            data = os.pread(fd, want, 0)
        state = file.state
        if state is None or data[STAMP] != file.stamp:
            state = load(data, boot)  # else nobody wrote since we did: reuse it
        try:
            result, dirty = change(state, now)
            if answers is not None:
                dirty = answer(state, answers, now) or dirty
            if unused is not None:
                dirty = forget(state, unused) or dirty
        except BaseException:
            file.state = None  # maybe changed half way: decode afresh
            raise
        if dirty:
            stamp = (stamp + 1) & 0xFFFF_FFFF_FFFF_FFFF
            raw = dump(state, boot, now, stamp)
            # Readers hold the lock too, so an in-place rewrite is never seen half
            # done; a shorter state leaves the old tail behind, which the prefix's
            # length excludes. Truncate only once that tail would cost reads.
            os.pwrite(fd, raw, 0)
            if len(data) > len(raw) + SLACK // 2:
                os.ftruncate(fd, len(raw))
            file.size, file.stamp, file.state = len(raw), raw[STAMP], state
        else:
            file.size, file.stamp, file.state = len(data), data[STAMP], state
        return result, stamp
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
