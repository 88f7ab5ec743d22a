"""The machine-wide window store: every process of one user on one machine shares it.

One small JSON file per account under a per-user folder (mode 0700), read and rewritten
under an exclusive ``fcntl.flock`` for each grant, answer and refund. Why files and locks:
they need no daemon and no configuration, they work between unrelated processes (a cron
job next to four uvicorn workers) and between event loops of one process, and a process
that dies releases its lock with its file descriptors. The lock is held for tens of
microseconds and never across an ``await``, so it is taken blocking, in the event loop's
thread: a thread hop would cost more than the wait.

Times are ``time.monotonic()``: on Linux and macOS that clock is the machine's, common to
all its processes. A file written before the machine last booted (a temp dir that
survives reboots) is recognised by its boot id and discarded.

Where ``fcntl`` or a private folder is not available, :func:`default_store` falls back to
the per-loop :class:`~amo_pipelines.windows.InMemoryWindowStore` and logs a warning once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..windows import (
    Admission,
    Blocked,
    Denied,
    Granted,
    InMemoryWindowStore,
    PenaltyRule,
    SharedAdmission,
    Window,
    WindowStore,
)
from ._lease import DEFAULT_LEASE, LeaseKeeper, Renewal, check_lease, recovered, scaled

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileWindowStore", "default_directory", "default_store"]

logger = logging.getLogger("amo_pipelines.ratelimit")

ENV_DIRECTORY = "AMO_PIPELINES_STATE_DIR"
_DECODER = json.JSONDecoder()
_T = TypeVar("_T")


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


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:  # not Linux: keep the files (macOS's temp dir is emptied at boot)
        return ""


def _private_directory(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{path} must belong to this user and be private (mode 0700); "
            f"set {ENV_DIRECTORY} to another folder"
        )


class FileWindowStore:
    """Windows, pauses, penalties and blocks of each account in a file under ``directory``.

    ``lease``: seconds a pending grant holds its place without renewal (see
    :mod:`amo_pipelines.stores._lease`); a killed process frees its places within
    ``lease`` plus one period. Raises ``OSError`` if the folder can not be made private.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, lease: float = DEFAULT_LEASE
    ) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError("FileWindowStore needs POSIX file locks (fcntl)")
        self.directory = Path(directory) if directory is not None else default_directory()
        self.lease = check_lease(lease)
        _private_directory(self.directory)
        self._boot = _boot_id()
        self._pid = os.getpid()
        self._fds: dict[str, int] = {}
        self._seq = 0
        self._tag = os.urandom(6).hex()
        self._keeper = LeaseKeeper(self.lease, self._renew)
        self._closer = weakref.finalize(self, _close_all, self._fds)

    def __repr__(self) -> str:
        return f"FileWindowStore({str(self.directory)!r}, lease={self.lease!r})"

    def close(self) -> None:
        """Close the cached file descriptors (they are also closed when collected)."""
        _close_all(self._fds)

    # ------------------------------------------------------------------ WindowStore

    async def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        """:class:`WindowStore` use without an account: no pause, penalty or block."""
        admission = await self.acquire_account("", windows, None)
        if isinstance(admission, Blocked):  # pragma: no cover - never recorded without one
            return Denied(math.inf, tuple(range(len(windows))))
        return admission

    async def acquire_account(
        self, account: str, windows: Sequence[Window], rule: PenaltyRule | None
    ) -> SharedAdmission:
        self._seq += 1
        receipt = f"{self._tag}.{self._seq}"
        lease = self.lease

        def admit(data: dict[str, Any], now: float) -> tuple[SharedAdmission, bool]:
            blocked = data.get("bu")
            if blocked is not None and (blocked < 0 or now < blocked):
                return Blocked(None if blocked < 0 else blocked - now, data.get("bn", "")), False
            if now < data.get("pu", -1.0):
                return Denied(data["pu"] - now, tuple(range(len(windows)))), False
            factor, since = data.get("f", 1.0), data.get("fs", 0.0)
            dirty = False
            if factor < 1.0 and rule is not None:
                factor, since = recovered(factor, since, now, rule)
                data["f"], data["fs"], dirty = factor, since, True
            logs: dict[str, list[list[Any]]] = data.setdefault("w", {})
            blocking: list[int] = []
            retry_after = 0.0
            for index, window in enumerate(windows):
                log = logs.get(window.key)
                if not log:
                    continue
                held = sorted(until for _, until in log if until > now)
                limit = scaled(window.limit, factor)
                excess = len(held) - limit
                if excess >= 0:
                    blocking.append(index)
                    # A place held by a pending grant frees a span after its answer at
                    # the earliest: look again then (the answer may come from a peer).
                    retry_after = max(retry_after, min(held[excess] - now, window.span))
            if blocking:
                return Denied(retry_after, tuple(blocking)), dirty
            for window in windows:
                log = logs.setdefault(window.key, [])
                log[:] = [entry for entry in log if entry[1] > now]
                log.append([receipt, now + lease + window.span])
            return Granted(at=now, windows=tuple(windows), receipt=receipt), True

        admission = self._transaction(account, windows, admit)
        if isinstance(admission, Granted):
            self._keeper.add(receipt, account, windows)
        return admission

    async def complete(self, grant: Granted, at: float) -> None:
        entry = self._keeper.pop(grant.receipt)
        if entry is not None:
            self._settle(entry[0], entry[1], grant.receipt, keep=True)

    async def refund(self, grant: Granted) -> None:
        entry = self._keeper.pop(grant.receipt)
        if entry is not None:
            self._settle(entry[0], entry[1], grant.receipt, keep=False)

    # ------------------------------------------------------------------ account state

    async def note_429(self, account: str, pause: float, rule: PenaltyRule) -> None:
        def note(data: dict[str, Any], now: float) -> tuple[None, bool]:
            data["pu"] = max(data.get("pu", -1.0), now + pause)
            factor, since = recovered(data.get("f", 1.0), data.get("fs", 0.0), now, rule)
            if now - data.get("pa", -1e18) >= rule.interval:  # one penalty per burst
                factor = max(rule.minimum, factor * rule.factor)
                since = data["pa"] = now
            data["f"], data["fs"] = factor, since
            return None, True

        self._transaction(account, (), note)

    async def note_block(self, account: str, cooldown: float | None, note: str) -> None:
        def block(data: dict[str, Any], now: float) -> tuple[None, bool]:
            data["bu"], data["bn"] = (-1.0 if cooldown is None else now + cooldown), note
            return None, True

        self._transaction(account, (), block)

    async def clear_block(self, account: str) -> None:
        def clear(data: dict[str, Any], now: float) -> tuple[None, bool]:
            had = "bu" in data
            data.pop("bu", None)
            data.pop("bn", None)
            return None, had

        self._transaction(account, (), clear)

    # ------------------------------------------------------------------ internals

    def _settle(
        self, account: str, windows: tuple[Window, ...], receipt: str, *, keep: bool
    ) -> None:
        def settle(data: dict[str, Any], now: float) -> tuple[None, bool]:
            logs = data.get("w", {})
            for window in windows:
                log = logs.get(window.key)
                if log is None:
                    continue
                log[:] = [entry for entry in log if entry[0] != receipt and entry[1] > now]
                if keep:  # answered now: the server saw it no later than now
                    log.append([receipt, now + window.span])
            return None, True

        self._transaction(account, windows, settle)

    async def _renew(self, items: list[Renewal]) -> None:
        by_account: dict[str, list[Renewal]] = {}
        for item in items:
            by_account.setdefault(item[0], []).append(item)
        for account, mine in by_account.items():

            def renew(
                data: dict[str, Any], now: float, mine: list[Renewal] = mine
            ) -> tuple[None, bool]:
                logs = data.get("w", {})
                for _, windows, receipt in mine:
                    for window in windows:
                        for entry in logs.get(window.key, ()):
                            if entry[0] == receipt:
                                entry[1] = max(entry[1], now + self.lease + window.span)
                return None, True

            self._transaction(account, (), renew)

    def _transaction(
        self,
        account: str,
        windows: Sequence[Window],
        change: Callable[[dict[str, Any], float], tuple[_T, bool]],
    ) -> _T:
        """Run ``change`` on the account's data under its file lock; write it if asked."""
        fd = self._fd(account or (windows[0].key if windows else ""))
        assert fcntl is not None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = time.monotonic()
            size = os.fstat(fd).st_size
            data: dict[str, Any] = {}
            if size:
                try:
                    # raw_decode ignores what follows the object: a process killed between
                    # the rewrite and the truncation leaves the tail of a longer old one.
                    data = _DECODER.raw_decode(os.pread(fd, size, 0).decode())[0]
                except ValueError:  # not ours (UnicodeDecodeError is a ValueError too)
                    data = {}
                if not isinstance(data, dict) or data.get("b") != self._boot:
                    data = {}
            result, dirty = change(data, now)
            if dirty:
                data["b"] = self._boot
                logs = data.get("w", {})
                for key in [key for key, log in logs.items() if not any(e[1] > now for e in log)]:
                    del logs[key]  # idle windows cost nothing
                raw = json.dumps(data, separators=(",", ":")).encode()
                # Readers hold the lock too, so an in-place rewrite is never seen half done.
                os.pwrite(fd, raw, 0)
                if len(raw) < size:
                    os.ftruncate(fd, len(raw))
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _fd(self, account: str) -> int:
        if os.getpid() != self._pid:
            # A forked child shares its parent's open file descriptions, and flock locks
            # belong to those: it must open its own to be excluded from its parent.
            self._fds.clear()
            self._pid = os.getpid()
        fd = self._fds.get(account)
        if fd is None:
            name = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            fd = os.open(self.directory / f"{name}.json", os.O_RDWR | os.O_CREAT, 0o600)
            self._fds[account] = fd
        return fd


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


_warned = False


def default_store() -> WindowStore:
    """A :class:`FileWindowStore` in :func:`default_directory`, or, where file locks or a
    private folder are not available, an :class:`InMemoryWindowStore` (warned once)."""
    global _warned
    try:
        return FileWindowStore()
    except OSError as exc:
        if not _warned:
            _warned = True
            logger.warning(
                "rate limiter: no machine-wide window store (%s); each event loop keeps "
                "its own budget, so other processes of this account are not counted",
                exc,
            )
        return InMemoryWindowStore()
