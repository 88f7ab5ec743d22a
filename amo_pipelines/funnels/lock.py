"""One apply per account at a time.

Concurrent applies to one account would confuse name-based matching (both would create the
same missing pipeline), so :func:`~amo_pipelines.funnels.apply` holds a lock named after the
account's host around reading, planning and writing.

:class:`ApplyLock` is the whole interface: ``hold(account)``, an async context manager that
raises :class:`ApplyLockedError` if it can not get the lock within its timeout.

:func:`lock_for` picks the lock from where the client's rate limiter keeps its budget, so the
applies of an account take turns wherever its requests share a budget:

* a :class:`~amo_pipelines.redis.RedisWindowStore` (several machines): a
  :class:`~amo_pipelines.redis.RedisApplyLock` on the same Redis and key prefix;
* otherwise :class:`LocalApplyLock`: an ``asyncio.Lock`` per account within the process plus
  an advisory ``fcntl.flock`` on a file per account in the folder of the machine-wide window
  store (:func:`amo_pipelines.budget.file.default_directory`, mode 0700), so processes of one
  machine take turns too. Without ``fcntl`` it holds within the process only.

``hold`` yields a :class:`HeldLock`. A lock with a time to live (Redis) can be lost while an
apply runs (Redis down longer than the TTL, the key deleted or taken by another holder); its
renewal task then calls :meth:`HeldLock.lose`, and the apply stops before its next write
(:class:`~amo_pipelines.funnels.ApplyLockLostError`). A :class:`LocalApplyLock` is not lost
while its process lives: the ``asyncio.Lock`` is released only by its holder and the kernel
keeps the ``flock`` until the file is closed (deleting the lock file by hand is the one way
round it, as for any lock file).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from ..budget.file import default_directory
from .errors import ApplyLockedError

if TYPE_CHECKING:
    from ..client import AmoClient

try:  # POSIX only; without it the lock holds within the process only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

POLL = 0.05

logger = logging.getLogger("amo_pipelines.funnels")


class HeldLock:
    """One holding of an account's apply lock, as ``hold`` yields it.

    ``lost`` is ``None`` while the lock is held, else why it was lost. Checking it costs an
    attribute read: the lock's renewal task sets it, so a write needs no round trip to the
    lock's store. :meth:`on_lost` callbacks run once, when it is lost.
    """

    __slots__ = ("_callbacks", "account", "lost")

    def __init__(self, account: str) -> None:
        self.account = account
        self.lost: str | None = None
        self._callbacks: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"HeldLock({self.account!r}, lost={self.lost!r})"

    def lose(self, reason: str) -> None:
        """Mark the lock lost (the first reason is kept) and run the callbacks."""
        if self.lost is not None:
            return
        self.lost = reason
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one callback's failure must not keep the others from running
                logger.exception("apply lock of %s: a callback on its loss failed", self.account)

    def on_lost(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the lock is lost (at once if it is); returns a function
        that removes it."""
        if self.lost is not None:
            callback()
            return lambda: None
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove


class ApplyLock(Protocol):
    def hold(self, account: str) -> AbstractAsyncContextManager[HeldLock | None]:
        """Hold the account's lock for the ``async with`` block, or raise
        :class:`ApplyLockedError` after the lock's timeout. Yields a :class:`HeldLock` (a lock
        that can not be lost may yield ``None``)."""
        ...


def default_lock_directory() -> Path:
    """The machine-wide window store's folder (``$AMO_PIPELINES_STATE_DIR``, else
    ``$XDG_RUNTIME_DIR/amo_pipelines``, else a per-user temporary folder): one private place
    for everything this user's processes share about an account."""
    return default_directory()


def lock_for(amo: AmoClient, *, timeout: float = 0.0) -> ApplyLock:
    """The apply lock that matches ``amo``'s rate limiter store (see the module)."""
    redis_module = sys.modules.get("amo_pipelines.redis")
    # A RedisWindowStore exists only if its module was imported: checking sys.modules keeps
    # the core free of any import of redis.
    if redis_module is not None:
        store = amo.rate_limiter.store
        if isinstance(store, redis_module.RedisWindowStore):
            lock: ApplyLock = redis_module.RedisApplyLock(
                store.redis, prefix=store.prefix, timeout=timeout
            )
            return lock
    if timeout == DEFAULT_LOCK.timeout:
        return DEFAULT_LOCK
    return LocalApplyLock(timeout=timeout)


class LocalApplyLock:
    """In-process ``asyncio.Lock`` per account plus a machine-wide ``flock`` per account.

    ``timeout`` is how long ``hold`` waits for another apply to finish (0: not at all).
    ``directory`` defaults to :func:`default_lock_directory`, looked up at each ``hold`` (so
    a change of ``$AMO_PIPELINES_STATE_DIR`` applies to the module's default lock too).
    """

    def __init__(self, directory: str | Path | None = None, *, timeout: float = 0.0) -> None:
        self._directory = Path(directory) if directory is not None else None
        self.timeout = timeout
        self._locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __repr__(self) -> str:
        return f"LocalApplyLock({str(self.directory)!r}, timeout={self.timeout})"

    @property
    def directory(self) -> Path:
        return self._directory if self._directory is not None else default_lock_directory()

    def path_for(self, account: str) -> Path:
        digest = hashlib.sha256(account.encode()).hexdigest()[:16]
        return self.directory / f"apply-{digest}.lock"

    @contextlib.asynccontextmanager
    async def hold(self, account: str) -> AsyncIterator[HeldLock]:
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
                yield HeldLock(account)  # never lost: see the module
            finally:
                handle.close()  # closing the file releases the flock
        finally:
            lock.release()

    async def _file_lock(self, account: str, deadline: float) -> IO[str]:
        directory = self.directory
        self._make_directory(directory)
        path = directory / self.path_for(account).name
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

    @staticmethod
    def _make_directory(directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o700)


def _read_holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


DEFAULT_LOCK = LocalApplyLock()
