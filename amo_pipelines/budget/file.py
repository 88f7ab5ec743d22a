"""The machine-wide window store: every process of one user on one machine shares it.

One small file per account under a per-user folder (mode 0700), read and rewritten under
an exclusive ``fcntl.flock`` for each grant, answer and refund. Why files and locks: they
need no daemon and no configuration, they work between unrelated processes (a cron job
next to four uvicorn workers) and between event loops of one process, and a process that
dies releases its lock with its file descriptors. The lock is held for a few microseconds
and never across an ``await``, so it is taken blocking, in the event loop's thread: a
thread hop would cost more than the wait.

The file is binary (see :mod:`amo_pipelines.budget._filestate`): each window is two
sorted arrays, the times its places free up and the grants' receipts, read and written
as raw bytes, so that a call costs a few system calls and no text encoding. Expired
places are dropped whenever a window is written, so a window never holds more than its
limit. A store keeps the state it last read or wrote decoded, and decodes the file again
only once a peer has written (every write carries a new stamp). An answer is written with
the account's next write, at the latest when the event loop turns: until then its place
counts as pending, which frees it later, never sooner. Far below its limits a busy process
reserves a few places ahead in each grant's write and grants from them without touching
the file (see :mod:`amo_pipelines.budget._pool`).

Times are ``time.monotonic()``: on Linux and macOS that clock is the machine's, common to
all its processes. A file written before the machine last booted (a temp dir that
survives reboots) is recognised by its boot id and discarded.

Where ``fcntl`` or a private folder is not available, :func:`default_store` falls back to
the per-loop :class:`~amo_pipelines.budget.windows.InMemoryWindowStore` and logs a warning once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import time
import weakref
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ._filedir import File, close_all, default_directory, locked, private_directory
from ._filestate import SUFFIX, State, boot_id, key_of
from ._lease import DEFAULT_LEASE, LeaseKeeper, Renewal, check_lease, recovered, scaled
from ._pool import LAST_ID, MAX_AGE, Entry, Pools, extras, receipts
from .windows import (
    Admission,
    AtOnce,
    Blocked,
    Denied,
    Granted,
    InMemoryWindowStore,
    PenaltyRule,
    SharedAdmission,
    Window,
    WindowStore,
    granted,
)

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileWindowStore", "default_directory", "default_store"]

logger = logging.getLogger("amo_pipelines.budget.limiter")

_T = TypeVar("_T")


class FileWindowStore(AtOnce):
    """Windows, pauses, penalties and blocks of each account in a file under ``directory``.

    ``lease``: seconds a pending grant holds its place without renewal (see
    :mod:`amo_pipelines.budget._lease`); a killed process frees its places within
    ``lease`` plus one period. Raises ``OSError`` if the folder can not be made private.
    """

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, lease: float = DEFAULT_LEASE
    ) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError("FileWindowStore needs POSIX file locks (fcntl)")
        self.directory = Path(directory) if directory is not None else default_directory()
        self.lease = check_lease(lease)
        private_directory(self.directory)
        self._boot = boot_id()
        self._forks = _forks
        self._files: dict[str, File] = {}
        # Receipts are 64-bit numbers counted from a random start: two stores' runs overlap
        # only if their starts fall within a few million of each other (odds ~1e-12).
        self._next_id = int.from_bytes(os.urandom(8), "little")
        self._stamp = int.from_bytes(os.urandom(8), "little")  # (the same for stamps)
        self._keeper = LeaseKeeper(self.lease, self._renew)
        # Answers not written yet, by file name, and the loop that will write them.
        self._answers: dict[str, list[Entry]] = {}
        self._flush_on: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._pools = Pools(self._flush)
        self._by_windows = self._pools.by_windows  # (the same dict for the store's life)
        self._closer = weakref.finalize(self, close_all, self._files)

    def __repr__(self) -> str:
        return f"FileWindowStore({str(self.directory)!r}, lease={self.lease!r})"

    def close(self) -> None:
        """Write the answers not written yet, give back the places reserved ahead, and
        close the cached file descriptors (they are also closed when collected)."""
        self._pools.drop_all()
        self._flush()
        close_all(self._files)

    # ------------------------------------------------------------------ WindowStore

    # Every call here is done before it returns (the lock is never held across an await):
    # the limiter calls the *_now methods directly (AnswersAtOnce); AtOnce gives the
    # WindowStore coroutines over them, and this one is the shared store's.
    async def acquire_account(
        self, account: str, windows: Sequence[Window], rule: PenaltyRule | None
    ) -> SharedAdmission:
        return self.acquire_account_now(account, windows, rule)

    def acquire_now(
        self, windows: Sequence[Window], now: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> Admission:
        """:class:`WindowStore` use without an account: no pause, penalty or block."""
        admission = self.acquire_account_now("", windows, None, loop)
        if isinstance(admission, Blocked):  # pragma: no cover - never recorded without one
            return Denied(math.inf, tuple(range(len(windows))))
        return admission

    def acquire_account_now(
        self,
        account: str,
        windows: Sequence[Window],
        rule: PenaltyRule | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> SharedAdmission:
        if self._forks != _forks:
            self._after_fork()
        # A place reserved ahead: no file access (the limiter passes the same tuple).
        pool = self._by_windows.get(id(windows))
        if pool is not None and pool.rids and pool.windows is windows and pool.account == account:
            now = time.monotonic()
            if now - pool.born < MAX_AGE:
                receipt = format(pool.rids.pop(), "x")
                armed = self._keeper.armed  # (keeper.add without its frame: timer on)
                if loop is not None and armed is not None and armed() is loop:
                    self._keeper.pending[receipt] = (account, pool.windows)
                else:
                    self._keeper.add(receipt, account, windows, loop)
                return granted(now, pool.windows, receipt)
        name = account or windows[0].key
        pool = None
        if type(windows) is tuple:
            pool = self._pools.plan(account, name, windows, time.monotonic())
        want = 0 if pool is None else pool.want
        reserved: list[int] = []
        rid = self._next_id
        self._next_id = (rid + 1) & LAST_ID
        lease = self.lease

        def admit(state: State, now: float) -> tuple[SharedAdmission, bool]:
            if state.blocked and (state.blocked_until < 0 or now < state.blocked_until):
                wait = None if state.blocked_until < 0 else state.blocked_until - now
                return Blocked(wait, state.note), False
            if now < state.pause:
                return Denied(state.pause - now, tuple(range(len(windows)))), False
            dirty = False
            if state.factor < 1.0 and rule is not None:
                state.factor, state.since = recovered(state.factor, state.since, now, rule)
                dirty = True
            factor = state.factor
            logs = []
            blocking: list[int] = []
            retry_after = 0.0
            for index, window in enumerate(windows):
                log = state.log(key_of(window), create=True)  # (an empty one is not written)
                log.prune(now)
                limit = window.limit if factor >= 1.0 else scaled(window.limit, factor)
                excess = len(log.untils) - limit
                if excess >= 0:
                    blocking.append(index)
                    # A place held by a pending grant frees a span after its answer at
                    # the earliest: look again then (the answer may come from a peer).
                    retry_after = max(retry_after, min(log.untils[excess] - now, window.span))
                logs.append(log)
            if blocking:
                return Denied(retry_after, tuple(blocking)), dirty
            rids = array("Q", [rid])
            if want and factor >= 1.0:
                free = min(w.limit - len(log.untils) for w, log in zip(windows, logs, strict=True))
                count = extras(want, free - 1)  # (free after this grant)
                if count:
                    reserved.extend(receipts(self._next_id, count))
                    self._next_id = (self._next_id + count) & LAST_ID
                    rids.extend(reserved)
            for window, log in zip(windows, logs, strict=True):
                log.add_many(now + lease + window.span, rids)
            return granted(now, tuple(windows), format(rid, "x")), True

        admission = self._transaction(name, admit)
        if isinstance(admission, Granted):
            self._keeper.add(admission.receipt, account, windows, loop)
            if pool is not None:
                self._pools.filled(pool, reserved, admission.at, loop)
        elif pool is not None:
            pool.active = False  # full: answers go back to being written at once
        return admission

    def complete_now(
        self, grant: Granted, at: float, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        """Record the answer with the account's next write, at the latest once the event
        loop is through with what is ready now.

        Until then the grant holds its place as a pending one (later freed, never sooner),
        and several answers that arrive together cost one write; this process's next
        grant (often right after, in the same step) carries them for free. Answers of
        grants made far below the limits wait for the next write or the pools' timer.
        """
        entry = self._keeper.pending.pop(grant.receipt, None)
        if entry is None:
            return
        account, windows = entry
        self._answers.setdefault(account or windows[0].key, []).append(
            (windows, int(grant.receipt, 16))
        )
        # Far below the limits (its pool is active): with the next write, or the pools' timer.
        pool = self._by_windows.get(id(windows))
        if pool is not None and pool.active and pool.windows is windows:
            armed = self._pools.armed
            if loop is None or armed is None or armed() is not loop:
                self._pools.arm(loop)
            return
        if loop is None:
            loop = asyncio.get_running_loop()
        # (One armed on a loop that closed never runs; weakly: nothing keeps it alive.)
        if self._flush_on is None or self._flush_on() is not loop:
            self._flush_on = weakref.ref(loop)
            loop.call_soon(self._flush)

    def refund_now(self, grant: Granted) -> None:
        entry = self._keeper.pop(grant.receipt)
        if entry is None:
            return
        account, windows = entry
        name = account or windows[0].key
        self._pools.forget.setdefault(name, []).append((windows, int(grant.receipt, 16)))
        self._transaction(name, _unchanged)  # (at once: a peer may be waiting for it)

    # ------------------------------------------------------------------ account state

    async def note_429(self, account: str, pause: float, rule: PenaltyRule) -> None:
        self._pools.drop_account(account)  # (given back in this write)

        def note(state: State, now: float) -> tuple[None, bool]:
            state.pause = max(state.pause, now + pause)
            factor, since = recovered(state.factor, state.since, now, rule)
            if now - state.penalised >= rule.interval:  # one penalty per burst
                factor = max(rule.minimum, factor * rule.factor)
                since = state.penalised = now
            state.factor, state.since = factor, since
            return None, True

        self._transaction(account, note)

    async def note_block(self, account: str, cooldown: float | None, note: str) -> None:
        self._pools.drop_account(account)

        def block(state: State, now: float) -> tuple[None, bool]:
            state.blocked, state.note = True, note
            state.blocked_until = -1.0 if cooldown is None else now + cooldown
            return None, True

        self._transaction(account, block)

    async def clear_block(self, account: str) -> None:
        def clear(state: State, now: float) -> tuple[None, bool]:
            had = state.blocked
            state.blocked, state.blocked_until, state.note = False, -1.0, ""
            return None, had

        self._transaction(account, clear)

    # ------------------------------------------------------------------ internals

    def _flush(self, skip: frozenset[str] = frozenset()) -> None:
        """Write the answers and the places to give back no other write has carried yet
        (but those of files in ``skip``)."""
        self._flush_on = None
        for name in {**self._answers, **self._pools.forget}:
            if name in skip:
                continue
            try:
                self._transaction(name, _unchanged)
            except Exception as exc:  # kept for the next write; meanwhile pending: safe
                logger.warning("rate limiter: window store failed (%s)", type(exc).__name__)

    async def _renew(self, items: list[Renewal]) -> None:
        by_file: dict[str, list[Renewal]] = {}
        for item in items:
            by_file.setdefault(item[0] or item[1][0].key, []).append(item)
        for name, mine in by_file.items():

            def renew(state: State, now: float, mine: list[Renewal] = mine) -> tuple[None, bool]:
                dirty = False
                for _, windows, receipt in mine:
                    if receipt not in self._keeper.pending:
                        continue  # answered since it was listed: it must not hold longer
                    rid = int(receipt, 16)
                    for window in windows:
                        log = state.log(key_of(window))
                        until = None if log is None else log.pop(rid)
                        if log is not None and until is not None:
                            log.add(max(until, now + self.lease + window.span), rid)
                            dirty = True
                return None, dirty

            self._transaction(name, renew)

    def _transaction(self, name: str, change: Callable[[State, float], tuple[_T, bool]]) -> _T:
        """Run ``change`` on the state in file ``name`` under its lock, with the answers
        still to record there; write it if anything changed."""
        file = self._file(name)
        answers = self._answers.pop(name, None)
        unused = self._pools.forget.pop(name, None)
        try:
            return self._locked(file, change, answers, unused)
        except BaseException:
            if answers:  # not written: they wait for the next write
                self._answers.setdefault(name, []).extend(answers)
            if unused:
                self._pools.forget.setdefault(name, []).extend(unused)
            raise

    def _locked(
        self,
        file: File,
        change: Callable[[State, float], tuple[_T, bool]],
        answers: list[Entry] | None,
        unused: list[Entry] | None,
    ) -> _T:
        result, self._stamp = locked(file, self._boot, self._stamp, change, answers, unused)
        return result

    def _file(self, account: str) -> File:
        if self._forks != _forks:
            self._after_fork()
        file = self._files.get(account)
        if file is None:
            name = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            fd = os.open(self.directory / f"{name}{SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600)
            file = self._files[account] = File(fd)
        return file

    def _after_fork(self) -> None:
        # A forked child shares its parent's open file descriptions, and flock locks
        # belong to those: it must open its own to be excluded from its parent.
        self._files.clear()
        self._answers.clear()  # the parent's to write
        self._pools.clear()  # (and to use or give back)
        self._forks = _forks


def _unchanged(state: State, now: float) -> tuple[None, bool]:
    return None, False


_forks = 0  # forks of this process so far: a store notices one without a getpid per call


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forked)

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
