"""One apply per account at a time.

Concurrent applies to one account would confuse name-based matching (both would create the
same missing pipeline), so :func:`~amo_pipelines.funnels.apply` holds a lock named after the
account's host around reading, planning and writing.

:class:`ApplyLock` is the whole interface: ``hold(account)``, an async context manager that
raises :class:`ApplyLockedError` if it can not get the lock within its timeout. The default,
:class:`LocalApplyLock`, is an ``asyncio.Lock`` per account within the process plus an
advisory ``fcntl.flock`` on a file per account in a per-user folder (mode 0700:
``$XDG_RUNTIME_DIR/amo-pipelines``, or ``amo-pipelines-<uid>`` in the temporary folder), so
processes of one machine take turns too. A lock shared between machines (e.g. in Redis, once
the SDK has shared stores) is another class with the same ``hold`` method.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, Protocol

from .errors import ApplyLockedError

try:  # POSIX only; without it the lock holds within the process only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

POLL = 0.05


class ApplyLock(Protocol):
    def hold(self, account: str) -> AbstractAsyncContextManager[None]:
        """Hold the account's lock for the ``async with`` block, or raise
        :class:`ApplyLockedError` after the lock's timeout."""
        ...


def default_lock_directory() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "amo-pipelines"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"amo-pipelines-{uid}"


class LocalApplyLock:
    """In-process ``asyncio.Lock`` per account plus a machine-wide ``flock`` per account.

    ``timeout`` is how long ``hold`` waits for another apply to finish (0: not at all).
    """

    def __init__(self, directory: str | Path | None = None, *, timeout: float = 0.0) -> None:
        self.directory = Path(directory) if directory is not None else default_lock_directory()
        self.timeout = timeout
        self._locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __repr__(self) -> str:
        return f"LocalApplyLock({str(self.directory)!r}, timeout={self.timeout})"

    def path_for(self, account: str) -> Path:
        digest = hashlib.sha256(account.encode()).hexdigest()[:16]
        return self.directory / f"apply-{digest}.lock"

    @contextlib.asynccontextmanager
    async def hold(self, account: str) -> AsyncIterator[None]:
        deadline = time.monotonic() + self.timeout
        key = (id(asyncio.get_running_loop()), account)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), timeout=max(self.timeout, 0.001))
        except asyncio.TimeoutError:
            raise ApplyLockedError(
                f"another apply to {account} is running in this process"
            ) from None
        try:
            handle = await self._file_lock(account, deadline)
            try:
                yield
            finally:
                handle.close()  # closing the file releases the flock
        finally:
            lock.release()

    async def _file_lock(self, account: str, deadline: float) -> IO[str]:
        self._make_directory()
        path = self.path_for(account)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115, ASYNC230 - held past this call; a tiny local file
        if fcntl is None:  # pragma: no cover
            return handle
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(path)
                    handle.close()
                    raise ApplyLockedError(
                        f"another apply to {account} is running{holder} (lock file {path})"
                    ) from None
                await asyncio.sleep(POLL)
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return handle

    def _make_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)


def _read_holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


DEFAULT_LOCK = LocalApplyLock()
