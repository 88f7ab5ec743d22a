"""The window stores' per-request paths, written for speed, count exactly as the plain
ones did: the in-process store against a reference copy of its earlier code, the file's
receipt bookkeeping (runs taken out as one slice, answers grouped by windows) against the
plain rule, and how many places the machine-wide store reserves ahead as demand goes."""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from array import array
from collections.abc import Sequence
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import InMemoryWindowStore
from amo_pipelines.budget._filestate import SUFFIX, Log, _by_windows, load
from amo_pipelines.budget._pool import MAX_AGE, MAX_EXTRA, Pools
from amo_pipelines.budget.file import FileWindowStore
from amo_pipelines.budget.windows import Admission, Denied, Granted, PenaltyRule, Window

ACCOUNT = "acme.amocrm.ru"
RULE = PenaltyRule(factor=0.5, step=0.1, interval=1.0, minimum=1 / 64)


class Reference:
    """The in-process store as it was written before its hot path was (one pass to check
    with a helper per window, one to record, insort for every answer)."""

    def __init__(self) -> None:
        self.logs: dict[str, tuple[float, list[float], list[int]]] = {}

    def _prune(self, key: str, now: float) -> bool:
        span, times, pending = self.logs[key]
        del times[: bisect.bisect_right(times, now - span)]
        if not times and not pending[0]:
            del self.logs[key]
            return False
        return True

    def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        blocking: list[int] = []
        retry_after = 0.0
        for index, window in enumerate(windows):
            if window.key not in self.logs or not self._prune(window.key, now):
                continue
            _, times, pending = self.logs[window.key]
            self.logs[window.key] = (window.span, times, pending)
            excess = len(times) + pending[0] - window.limit
            if excess >= 0:
                blocking.append(index)
                wait = times[excess] + window.span - now if excess < len(times) else math.inf
                retry_after = max(retry_after, wait)
        if blocking:
            return Denied(retry_after=retry_after, blocking=tuple(blocking))
        for window in windows:
            if window.key not in self.logs:
                self.logs[window.key] = (window.span, [], [0])
            self.logs[window.key][2][0] += 1
        return Granted(now, tuple(windows))

    def complete(self, grant: Granted, at: float) -> None:
        for window in grant.windows:
            entry = self.logs.get(window.key)
            if entry is None or not entry[2][0]:
                continue
            entry[2][0] -= 1
            bisect.insort(entry[1], max(at, grant.at))

    def refund(self, grant: Granted) -> None:
        for window in grant.windows:
            entry = self.logs.get(window.key)
            if entry is None or not entry[2][0]:
                continue
            entry[2][0] -= 1
            if not entry[1] and not entry[2][0]:
                del self.logs[window.key]


WINDOWS = [
    Window("i|acme|fp1", 2, 1.0),
    Window("i|acme|fp2", 3, 0.5),
    Window("a|acme", 4, 1.5),
]
ASKS = [(WINDOWS[0], WINDOWS[2]), (WINDOWS[1], WINDOWS[2]), (WINDOWS[0],), (WINDOWS[2],)]


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["acquire", "complete", "late", "refund", "wait"]),
            st.integers(0, len(ASKS) - 1),
            st.floats(0.0, 0.8),
        ),
        max_size=60,
    )
)
def test_the_in_process_store_grants_and_refuses_as_its_reference(
    steps: list[tuple[str, int, float]],
) -> None:
    """Any script of asks (several windows sharing keys), answers (also one that reports an
    answer time before its grant), refunds and waits: the same admissions, with the same
    waits and full windows, and the same keys kept."""
    store, reference = InMemoryWindowStore(), Reference()
    now = 0.0
    held: list[tuple[Granted, Granted]] = []
    for action, which, amount in steps:
        if action == "acquire":
            got, want = store.acquire_now(ASKS[which], now), reference.acquire(ASKS[which], now)
            assert got == want
            if isinstance(got, Granted):
                assert isinstance(want, Granted)
                held.append((got, want))
        elif action == "wait":
            now += amount
        elif held:
            got_grant, want_grant = held.pop(which % len(held))
            if action == "refund":
                store.refund_now(got_grant)
                reference.refund(want_grant)
            else:  # an answer; "late": one reported with a time before its grant
                at = now if action == "complete" else got_grant.at - 1.0
                store.complete_now(got_grant, at)
                reference.complete(want_grant, at)
        assert len(store) == len(reference.logs)


def test_an_answer_out_of_time_order_is_still_counted_in_order() -> None:
    """Answers are appended in the usual case; one reported earlier than the last goes in
    its place, so the window frees the right place first."""
    store = InMemoryWindowStore()
    window = Window("a|acme", 2, 1.0)
    first, second = store.acquire_now((window,), 0.0), store.acquire_now((window,), 0.1)
    assert isinstance(first, Granted) and isinstance(second, Granted)
    store.complete_now(second, 0.5)
    store.complete_now(first, 0.2)  # the earlier answer, recorded second
    refused = store.acquire_now((window,), 1.0)
    assert isinstance(refused, Denied) and refused.blocking == (0,)
    assert math.isclose(refused.retry_after, 0.2)  # 0.2 + 1.0 frees the first place
    assert isinstance(store.acquire_now((window,), 1.25), Granted)


def test_a_key_whose_places_all_expired_is_forgotten_even_when_refused() -> None:
    store = InMemoryWindowStore()
    token, account = Window("i|acme|fp1", 5, 0.5), Window("a|acme", 1, 10.0)
    first = store.acquire_now((token,), 0.0)
    assert isinstance(first, Granted)
    store.complete_now(first, 0.0)
    held = store.acquire_now((account,), 0.0)
    assert isinstance(held, Granted) and len(store) == 2
    assert isinstance(store.acquire_now((token, account), 1.0), Denied)  # the account: full
    assert len(store) == 1  # the token's key held only an expired place


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 2**64 - 200),
    before=st.integers(0, 5),
    size=st.integers(1, 40),
    after=st.integers(0, 5),
    cut=st.integers(0, 40),
    missing=st.lists(st.integers(0, 39), max_size=3),
    split=st.booleans(),
)
def test_a_run_of_receipts_comes_out_exactly(
    start: int, before: int, size: int, after: int, cut: int, missing: list[int], split: bool
) -> None:
    """A call's receipts that form one run: taken out as one slice when they lie side by
    side, else one by one; either way exactly the held ones, the rest kept in order (a run
    split across two untils, a run with receipts not held, neighbours on both sides)."""
    log = Log(array("d"), array("Q"))
    run = list(range(start + 100, start + 100 + size))
    held = [rid for index, rid in enumerate(run) if index not in missing]
    if before:
        log.add_many(1.0, array("Q", range(start, start + before)))
    if split and 0 < cut < len(held):
        log.add_many(2.0, array("Q", held[:cut]))
        log.add(2.5, start + 99)  # between the two halves
        log.add_many(3.0, array("Q", held[cut:]))
    elif held:
        log.add_many(2.0, array("Q", held))
    if after:
        log.add_many(4.0, array("Q", range(start + 100 + size, start + 100 + size + after)))
    kept = [entry for entry in zip(log.untils, log.ids, strict=True) if entry[1] not in run]
    taken = log.take(list(reversed(run)))
    assert sorted(taken) == sorted(held)
    assert list(zip(log.untils, log.ids, strict=True)) == kept


def test_places_are_grouped_by_their_windows_tuple() -> None:
    one = (Window("i|a|x", 100, 1.0), Window("a|a", 100, 1.0))
    other = (Window("i|a|y", 100, 1.0), Window("a|a", 100, 1.0))
    assert _by_windows([(one, 1), (one, 2), (one, 3)]) == [(one, [1, 2, 3])]
    assert _by_windows([(one, 1), (other, 2), (one, 3), (other, 4)]) == [
        (one, [1, 3]),
        (other, [2, 4]),
    ]
    equal = (Window("i|a|x", 100, 1.0), Window("a|a", 100, 1.0))  # equal, not the same
    assert _by_windows([(one, 1), (equal, 2)]) == [(one, [1]), (equal, [2])]


async def test_reserved_places_are_handed_out_lowest_receipt_first(tmp_path: Path) -> None:
    """So that the places answered between two writes form one run (see Log.take)."""
    store = FileWindowStore(tmp_path, lease=30.0)
    windows = (Window(f"a|{ACCOUNT}", 10**9, 60.0),)
    try:
        receipts = []
        loop = asyncio.get_running_loop()
        for _ in range(12):  # a first grant, then 1, 3, 7 reserved at its next writes
            admission = store.acquire_account_now(ACCOUNT, windows, RULE, loop)
            assert isinstance(admission, Granted)
            receipts.append(int(admission.receipt, 16))
            assert admission.receipt in store._keeper.pending  # its lease is kept
        assert receipts == sorted(receipts) and len(set(receipts)) == 12
        for receipt in receipts:
            store.complete_now(Granted(0.0, windows, format(receipt, "x")), 0.0)
        assert not store._keeper.pending
    finally:
        store.close()


async def test_a_pool_that_outlives_its_places_in_use_keeps_what_was_used() -> None:
    """Demand below what a pool holds per MAX_AGE: its next reservation is what was taken
    of the last one (it used to start again from none, a write per few calls); after an
    idle spell it starts from none; used up in time, it doubles (up to MAX_EXTRA)."""
    pools = Pools(lambda skip: None)
    windows = (Window(f"a|{ACCOUNT}", 10**9, 60.0),)
    pool = pools.plan(ACCOUNT, ACCOUNT, windows, 0.0)
    assert pool is not None and pool.want == 0  # a first grant: demand unknown
    for step, want in enumerate([1, 3, 7, 15, 31, MAX_EXTRA], start=1):
        pool = pools.plan(ACCOUNT, ACCOUNT, windows, step * MAX_AGE / 10)  # used up in time
        assert pool is not None and pool.want == want
    filled_at = 0.6 * MAX_AGE
    pools.filled(pool, list(range(100, 100 + MAX_EXTRA)), filled_at, None)
    for expected in range(100, 120):  # 20 of 31 taken, lowest first; the rest grow old
        assert pool.rids.pop() == expected
    pool = pools.plan(ACCOUNT, ACCOUNT, windows, filled_at + MAX_AGE * 1.2)
    assert pool is not None and pool.want == 20
    assert sorted(r for _, r in pools.forget[ACCOUNT]) == list(range(120, 100 + MAX_EXTRA))
    pool = pools.plan(ACCOUNT, ACCOUNT, windows, filled_at + MAX_AGE * 4.5)  # idle since
    assert pool is not None and pool.want == 0


async def test_receipts_reserved_across_the_last_64_bit_number_wrap_around(
    tmp_path: Path,
) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    store._next_id = 2**64 - 6
    windows = (Window(f"a|{ACCOUNT}", 10**9, 60.0),)
    loop = asyncio.get_running_loop()
    try:
        receipts = []
        for _ in range(12):
            admission = store.acquire_account_now(ACCOUNT, windows, RULE, loop)
            assert isinstance(admission, Granted)
            receipts.append(int(admission.receipt, 16))
        assert len(set(receipts)) == 12 and all(0 <= r < 2**64 for r in receipts)
        assert min(receipts) < 10 < 2**64 - 10 < max(receipts)  # some on each side
    finally:
        store.close()


def _untils(store: FileWindowStore, window: Window) -> list[float]:
    import hashlib

    name = hashlib.sha256(ACCOUNT.encode()).hexdigest()[:32]
    data = (store.directory / f"{name}{SUFFIX}").read_bytes()
    log = load(data, store._boot).log(window.key.encode())
    return [] if log is None else list(log.untils)


def test_an_answer_waiting_for_the_pools_timer_is_written_on_a_new_loop(tmp_path: Path) -> None:
    """A place reserved ahead and granted on one event loop, answered on the next (the
    first has ended, and its timer with it): the answer still reaches the file within a
    few milliseconds, so the place frees a period after it, not after the lease."""
    store = FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"a|{ACCOUNT}", 10**9, 60.0)
    windows = (window,)
    grants: list[Granted] = []

    async def grant() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(6):  # the last ones come from places reserved ahead
            admission = store.acquire_account_now(ACCOUNT, windows, RULE, loop)
            assert isinstance(admission, Granted)
            grants.append(admission)
        for done in grants[:-1]:
            store.complete_now(done, 0.0, loop)

    async def answer() -> None:
        store.complete_now(grants[-1], 0.0, asyncio.get_running_loop())
        await asyncio.sleep(3 * MAX_AGE)

    try:
        asyncio.run(grant())
        asyncio.run(answer())
        now = time.monotonic()
        assert _untils(store, window)  # answered places: held for the window's span
        assert all(until < now + 60.0 + 1.0 for until in _untils(store, window))
    finally:
        store.close()
