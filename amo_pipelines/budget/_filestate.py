"""The machine-wide store's file layout: one account's state as a few hundred bytes.

Each window is two arrays ordered by when their places free up: those times (doubles) and
the grants' receipts (64-bit numbers), written as raw bytes, so that decoding a window is a
copy and counting its live places a binary search. Windows a call does not touch are not
decoded at all: their bytes are copied back as they were until their last place is free.
"""

from __future__ import annotations

import hashlib
import struct
import sys
import zlib
from array import array
from bisect import bisect_right
from typing import TYPE_CHECKING, Literal, overload

if TYPE_CHECKING:
    from .windows import Window

__all__ = [
    "SLACK",
    "STAMP",
    "SUFFIX",
    "State",
    "answer",
    "boot_id",
    "dump",
    "forget",
    "key_of",
    "load",
]

# The layout (native byte order: the file never leaves the machine). A prefix says how long
# the state is and checksums it, so the tail of a longer old state left by a process killed
# between a rewrite and its truncation, a rewrite of several pages cut short by a kill, or
# anything not ours, is never taken for a state.
SUFFIX = ".win"  # a new name for a new layout: the JSON files of earlier versions stay
# untouched for processes still running one (they do not share this budget)
_MAGIC = b"AMOWIN\x00\x02"
# magic, the writer's stamp, length of the state, crc32 of the state. The stamp is new at
# every write, so a reader that last saw its own stamp knows its decoded copy is current.
_PREFIX = struct.Struct("=8sQII")
STAMP = slice(0, 16)  # where magic and stamp are: what a reader compares
# boot id, pause until, penalty factor, factor since, last penalty, blocked until (< 0:
# until cleared), blocked?, length of the block's note, number of windows
_STATE = struct.Struct("=16sdddddBII")
_WINDOW = struct.Struct("=IId")  # length of the key, places, when the last one frees
SLACK = 4096  # bytes read beyond the last size seen, and stale tail tolerated
_NEVER = -1e18


class Log:
    """One window's held places, ordered by when they free up (``untils``)."""

    __slots__ = ("ids", "untils")

    def __init__(self, untils: array[float], ids: array[int]) -> None:
        self.untils = untils
        self.ids = ids

    def prune(self, now: float) -> None:
        expired = bisect_right(self.untils, now)
        if expired:
            del self.untils[:expired]
            del self.ids[:expired]

    def add(self, until: float, rid: int) -> None:
        index = bisect_right(self.untils, until)
        self.untils.insert(index, until)
        self.ids.insert(index, rid)

    def add_many(self, until: float, rids: array[int]) -> None:
        index = bisect_right(self.untils, until)
        self.untils[index:index] = array("d", [until]) * len(rids)
        self.ids[index:index] = rids

    def take(self, rids: list[int]) -> array[int]:
        """Take out the places of receipts ``rids``; the receipts that were held."""
        # The places a grant reserved ahead with it have consecutive receipts and one
        # until, so they lie side by side: a run of them comes out as one slice.
        taken = array("Q")
        ordered = sorted(rids)
        start, total = 0, len(ordered)
        if (
            total and ordered[-1] - ordered[0] == total - 1
        ):  # one run (a call's receipts are unique)
            run = array("Q", ordered)
            at = self.find(ordered[0])
            if at >= 0 and self.ids[at : at + total] == run:
                del self.untils[at : at + total]
                del self.ids[at : at + total]
                return run
        while start < total:
            end = start + 1
            while end < total and ordered[end] == ordered[end - 1] + 1:
                end += 1
            run = array("Q", ordered[start:end])
            at = self.find(ordered[start])
            if at >= 0 and self.ids[at : at + len(run)] == run:
                del self.untils[at : at + len(run)]
                del self.ids[at : at + len(run)]
                taken.extend(run)
            else:
                taken.extend(rid for rid in run if self.pop(rid) is not None)
            start = end
        return taken

    def find(self, rid: int) -> int:
        """The index of receipt ``rid``, or -1."""
        # A byte search, not ids.index(): that makes an int of every entry it passes, which
        # costs more than all the rest of a call once a window holds thousands.
        raw, needle = self.ids.tobytes(), rid.to_bytes(8, sys.byteorder)
        at = raw.find(needle)
        while at > 0 and at % 8:  # (a match across two entries)
            at = raw.find(needle, at + 1)
        return at if at < 0 else at // 8

    def pop(self, rid: int) -> float | None:
        """Take out the place of receipt ``rid``; its until, or None if not held."""
        index = self.find(rid)
        if index < 0:
            return None
        until = self.untils[index]
        del self.untils[index]
        del self.ids[index]
        return until


class State:
    """One account's file, decoded; windows are decoded only when asked for."""

    __slots__ = (
        "blocked",
        "blocked_until",
        "factor",
        "logs",
        "note",
        "pause",
        "penalised",
        "raw",
        "since",
    )

    def __init__(self) -> None:
        self.pause = -1.0
        self.factor = 1.0
        self.since = 0.0
        self.penalised = _NEVER
        self.blocked = False
        self.blocked_until = -1.0
        self.note = ""
        self.raw: dict[bytes, tuple[float, memoryview]] = {}  # key: (last until, entries)
        self.logs: dict[bytes, Log] = {}

    @overload
    def log(self, key: bytes, *, create: Literal[True]) -> Log: ...
    @overload
    def log(self, key: bytes) -> Log | None: ...

    def log(self, key: bytes, *, create: bool = False) -> Log | None:
        log = self.logs.get(key)
        if log is None:
            raw = self.raw.pop(key, None)
            if raw is not None:
                count = len(raw[1]) // 16
                untils, ids = array("d"), array("Q")
                untils.frombytes(raw[1][: 8 * count])
                ids.frombytes(raw[1][8 * count :])
                log = self.logs[key] = Log(untils, ids)
            elif create:
                log = self.logs[key] = Log(array("d"), array("Q"))
        return log


def load(data: bytes, boot: bytes) -> State:
    """The state in ``data``; an empty one if it is not a whole state of this boot."""
    state = State()
    if len(data) < _PREFIX.size:
        return state
    magic, _, length, crc = _PREFIX.unpack_from(data)
    end = _PREFIX.size + length
    if magic != _MAGIC or end > len(data) or length < _STATE.size:
        return state
    view = memoryview(data)[_PREFIX.size : end]
    if zlib.crc32(view) != crc:
        return state
    (written_at_boot, *fields, note_length, windows) = _STATE.unpack_from(view)
    if written_at_boot != boot:
        return state
    state.pause, state.factor, state.since, state.penalised, state.blocked_until = fields[:5]
    state.blocked = bool(fields[5])
    at = _STATE.size
    try:
        state.note = bytes(view[at : at + note_length]).decode("utf-8", "replace")
        at += note_length
        for _ in range(windows):
            key_length, count, last = _WINDOW.unpack_from(view, at)
            at += _WINDOW.size
            key = bytes(view[at : at + key_length])
            at += key_length
            state.raw[key] = (last, view[at : at + 16 * count])
            at += 16 * count
    except struct.error:  # pragma: no cover - the checksum matched: only a bug gets here
        return State()
    return state if at == len(view) else State()


def dump(state: State, boot: bytes, now: float, stamp: int) -> bytes:
    """``state`` as bytes, without the places that are free by ``now``."""
    parts: list[bytes | memoryview] = [b""]
    windows = 0
    for key, (last, entries) in state.raw.items():
        if last > now:  # not decoded: copied as it was, until its last place is free
            parts += (_WINDOW.pack(len(key), len(entries) // 16, last), key, entries)
            windows += 1
    for key, log in state.logs.items():
        log.prune(now)
        if log.untils:
            untils = log.untils
            parts += (_WINDOW.pack(len(key), len(untils), untils[-1]), key)
            parts += (untils.tobytes(), log.ids.tobytes())
            windows += 1
    note = state.note.encode("utf-8", "replace")
    parts[0] = (
        _STATE.pack(
            boot,
            state.pause,
            state.factor,
            state.since,
            state.penalised,
            state.blocked_until,
            state.blocked,
            len(note),
            windows,
        )
        + note
    )
    body = b"".join(parts)
    return _PREFIX.pack(_MAGIC, stamp, len(body), zlib.crc32(body)) + body


def boot_id() -> bytes:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            text = f.read().strip()
    except OSError:  # not Linux: keep the files (macOS's temp dir is emptied at boot)
        return bytes(16)
    return hashlib.md5(text.encode(), usedforsecurity=False).digest()


_keys: dict[str, bytes] = {}


def key_of(window: Window) -> bytes:
    key = _keys.get(window.key)
    if key is None:
        if len(_keys) >= 4096:  # a service of many accounts: start over rather than grow
            _keys.clear()
        key = _keys[window.key] = window.key.encode("utf-8", "surrogatepass")
    return key


def answer(state: State, answers: list[tuple[tuple[Window, ...], int]], now: float) -> bool:
    """Count answered grants from ``now`` (when they got their answer, or later)."""
    dirty = False
    for windows, rids in _by_windows(answers):
        for window in windows:
            log = state.log(key_of(window))
            if log is not None:
                taken = log.take(rids)
                if taken:
                    log.add_many(now + window.span, taken)
                    dirty = True
    return dirty


def _by_windows(
    places: list[tuple[tuple[Window, ...], int]],
) -> list[tuple[tuple[Window, ...], list[int]]]:
    """The receipts of ``places`` grouped by their windows (one pass over each window's
    entries for all of them; grants of one token share one tuple of windows)."""
    first = places[0][0]
    if len(places) == 1:
        return [(first, [places[0][1]])]
    rids = [rid for windows, rid in places if windows is first]
    if len(rids) == len(places):  # the common case: one token's windows
        return [(first, rids)]
    groups: dict[int, tuple[tuple[Window, ...], list[int]]] = {}
    for windows, rid in places:
        group = groups.get(id(windows))
        if group is None:
            groups[id(windows)] = (windows, [rid])
        else:
            group[1].append(rid)
    return list(groups.values())


def forget(state: State, places: list[tuple[tuple[Window, ...], int]]) -> bool:
    """Free the places of receipts never used (reserved ahead, or refunded)."""
    dirty = False
    for windows, rids in _by_windows(places):
        for window in windows:
            log = state.log(key_of(window))
            if log is not None and log.take(rids):
                dirty = True
    return dirty
