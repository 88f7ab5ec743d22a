"""The machine-wide store reserves places ahead far below its limits: a busy process then
grants most requests without a file transaction, and the file still counts every request
in flight or answered less than a period ago, so no window ever admits more than its limit.

What the file holds is read back from the file itself; transactions are counted with a spy
on the store's locked step (flock, read, change, write)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import FileWindowStore, Limit, RateLimiter
from amo_pipelines.budget._filestate import SUFFIX, load
from amo_pipelines.budget._pool import MAX_AGE
from amo_pipelines.budget.windows import Denied, Granted, PenaltyRule, Window

ACCOUNT = "acme.amocrm.ru"
RULE = PenaltyRule(factor=0.5, step=0.1, interval=1.0, minimum=1 / 64)
QUICK = PenaltyRule(factor=0.5, step=0.5, interval=MAX_AGE, minimum=1 / 64)  # back in ms
HIGH = 10**9


def held(store: FileWindowStore, window: Window, account: str = ACCOUNT) -> int:
    """Places the file holds for ``window`` now (pending, answered, reserved)."""
    name = hashlib.sha256(account.encode()).hexdigest()[:32]
    path = store.directory / f"{name}{SUFFIX}"
    if not path.exists():
        return 0
    log = load(path.read_bytes(), store._boot).log(window.key.encode())
    if log is None:
        return 0
    now = time.monotonic()
    return sum(1 for until in log.untils if until > now)


@contextmanager
def counted(store: FileWindowStore) -> Iterator[list[int]]:
    """Count the store's file transactions."""
    count = [0]
    locked = store._locked

    def spy(*args: Any) -> Any:
        count[0] += 1
        return locked(*args)

    store._locked = spy  # type: ignore[method-assign,assignment]
    try:
        yield count
    finally:
        del store._locked


def limiter(store: FileWindowStore, count: int = HIGH, period: float = 60.0) -> RateLimiter:
    return RateLimiter(
        integration_limit=Limit(count, period),
        account_limit=Limit(count, period),
        max_in_flight=None,
        store=store,
    )


def windows_of(lim: RateLimiter) -> tuple[Window, ...]:
    """The windows the limiter asks the store about (its own tuple)."""
    return lim._windows(lim._account(ACCOUNT), "fp", time.monotonic())


async def test_far_below_the_limits_grants_cost_few_transactions(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    lim = limiter(store)
    with counted(store) as transactions:
        for _ in range(200):
            hold = await lim.acquire(ACCOUNT, "fp")
            await asyncio.sleep(0)  # the loop turns while the request is out
            await lim.release(hold)
    assert transactions[0] <= 200 / 4  # 8 grants per transaction once demand is seen
    # Every one of the 200 is counted in the file, answered, for the whole period.
    await asyncio.sleep(2 * MAX_AGE)  # (unused places given back, answers written)
    for window in windows_of(lim):
        assert held(store, window) == 200
    store.close()


async def test_sixteen_concurrent_requests_share_the_reserved_places(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    lim = limiter(store)

    async def call() -> None:
        hold = await lim.acquire(ACCOUNT, "fp")
        await asyncio.sleep(0)
        await lim.release(hold)

    with counted(store) as transactions:
        for _ in range(25):
            await asyncio.gather(*(call() for _ in range(16)))
    assert transactions[0] <= 400 / 4
    store.close()
    for window in windows_of(lim):
        assert held(store, window) == 400


async def test_near_the_limit_every_grant_is_one_transaction(tmp_path: Path) -> None:
    """The default 7/s: never a place reserved ahead, fairness between processes as before."""
    store = FileWindowStore(tmp_path, lease=30.0)
    lim = RateLimiter(store=store, max_in_flight=None)  # 7/s per token, 50/s per account
    holds = []
    with counted(store) as transactions:
        for _ in range(7):
            holds.append(await lim.acquire(ACCOUNT, "fp"))
    assert transactions[0] == 7
    for window in windows_of(lim):
        assert held(store, window) == 7  # exactly the grants: nothing reserved
    other = FileWindowStore(tmp_path, lease=30.0)  # a peer sees the token full
    denied = await other.acquire_account(ACCOUNT, windows_of(lim), RULE)
    assert isinstance(denied, Denied)
    for hold in holds:
        lim.give_back(hold)
    store.close()
    other.close()


async def test_no_place_is_reserved_once_free_places_run_short(tmp_path: Path) -> None:
    """A limit of 40: places are reserved while at least 8 are free per place reserved,
    then the last grants are one transaction each, and the window fills exactly."""
    store = FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 40, 60.0),)
    grants: list[Granted] = []
    with counted(store) as transactions:
        for _ in range(45):
            admission = await store.acquire_account(ACCOUNT, window, RULE)
            if isinstance(admission, Granted):
                grants.append(admission)
        assert len(grants) == 40
        assert transactions[0] < 40  # some came from reserved places
        before = transactions[0]
        late = await store.acquire_account(ACCOUNT, window, RULE)
        assert isinstance(late, Denied) and transactions[0] == before + 1
    assert held(store, window[0]) == 40
    assert len({grant.receipt for grant in grants}) == 40
    for grant in grants:
        await store.refund(grant)
    assert held(store, window[0]) == 0
    store.close()


async def test_unused_places_go_back_after_a_few_milliseconds(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 1000, 60.0),)
    grants = [await store.acquire_account(ACCOUNT, window, RULE) for _ in range(4)]
    assert all(isinstance(grant, Granted) for grant in grants)
    assert held(store, window[0]) > 4  # places reserved ahead
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # a loop turn alone keeps them: the next request may come soon
    assert held(store, window[0]) > 4
    await asyncio.sleep(2 * MAX_AGE)
    assert held(store, window[0]) == 4
    store.close()


async def test_a_place_reserved_too_long_ago_is_not_granted(tmp_path: Path) -> None:
    """A loop blocked past the pools' age (its timer could not run): the places it
    reserved are given back, not granted, so a pause recorded meanwhile by a peer, or a
    lease run out, is seen."""
    store = FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 1000, 60.0),)
    for _ in range(4):
        assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Granted)
    assert held(store, window[0]) > 4
    time.sleep(2 * MAX_AGE)  # noqa: ASYNC251 - a loop blocked, so the pools' timer can not run
    peer = FileWindowStore(tmp_path, lease=30.0)
    await peer.note_429(ACCOUNT, 5.0, RULE)
    with counted(store) as transactions:
        assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Denied)
    assert transactions[0] == 1 and held(store, window[0]) == 4
    store.close()
    peer.close()


async def test_close_gives_the_unused_places_back(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 1000, 60.0),)
    for _ in range(4):
        assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Granted)
    assert held(store, window[0]) > 4
    store.close()
    assert held(store, window[0]) == 4


async def test_a_429_gives_the_unused_places_back_in_its_own_write(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 1000, 60.0),)
    for _ in range(4):
        assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Granted)
    assert held(store, window[0]) > 4
    with counted(store) as transactions:
        await store.note_429(ACCOUNT, 5.0, RULE)
    assert transactions[0] == 1 and held(store, window[0]) == 4
    # Paused: no reserved place is left to grant from.
    assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Denied)
    store.close()


async def test_a_block_gives_the_unused_places_back(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 1000, 60.0),)
    for _ in range(4):
        assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Granted)
    await store.note_block(ACCOUNT, 60.0, "blocked")
    assert held(store, window[0]) == 4
    store.close()


async def test_a_peer_s_penalty_stops_the_reserving(tmp_path: Path) -> None:
    a, b = FileWindowStore(tmp_path, lease=30.0), FileWindowStore(tmp_path, lease=30.0)
    window = (Window(f"a|{ACCOUNT}", 1000, 60.0),)
    await b.note_429(ACCOUNT, 0.0, RULE)  # halves the counts for everyone
    with counted(a) as transactions:
        for _ in range(20):
            assert isinstance(await a.acquire_account(ACCOUNT, window, RULE), Granted)
    assert transactions[0] == 20 and held(a, window[0]) == 20
    a.close()
    b.close()


def test_a_killed_process_s_reserved_places_free_within_lease_and_a_period(
    tmp_path: Path,
) -> None:
    window = (Window(f"a|{ACCOUNT}", 40, 0.2),)

    async def reserve_and_die() -> None:
        store = FileWindowStore(tmp_path, lease=0.3)
        for _ in range(4):
            assert isinstance(await store.acquire_account(ACCOUNT, window, RULE), Granted)
        store._pools.clear()  # as a kill -9 leaves them: never given back

    asyncio.run(reserve_and_die())
    peer = FileWindowStore(tmp_path, lease=0.3)
    assert held(peer, window[0]) > 4
    time.sleep(0.3 + 0.2 + 0.05)

    async def fill() -> int:
        granted = 0
        for _ in range(41):
            granted += isinstance(await peer.acquire_account(ACCOUNT, window, RULE), Granted)
        return granted

    assert asyncio.run(fill()) == 40
    peer.close()


OPS = st.sampled_from(["grant", "grant", "grant", "answer", "refund", "turn", "wait", "429"])


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 1), OPS), max_size=80), seed=st.integers(0, 99))
def test_the_file_never_counts_fewer_than_the_requests_it_must(
    steps: list[tuple[int, str]], seed: int
) -> None:
    run_steps(steps, random.Random(seed))


def test_the_invariant_holds_over_long_random_runs() -> None:
    """The same check over longer runs than hypothesis draws, with the pools in use."""
    for seed in range(6):
        rng = random.Random(seed)
        ops = ["grant"] * 12 + ["answer"] * 6 + ["refund", "turn", "turn", "wait", "429"]
        steps = [(rng.randrange(2), rng.choice(ops)) for _ in range(500)]
        assert run_steps(steps, rng) > 0  # some grants came from reserved places


def run_steps(steps: list[tuple[int, str]], rng: random.Random) -> int:
    """Two stores ("processes"), two tokens on one account: grants, answers, refunds, loop
    turns, waits past the pools' age and 429s in any order. After every step each window
    in the file holds at least the requests in flight or answered (its span outlasts the
    run) and at most its limit. Returns how many grants cost no transaction."""
    directory = Path(tempfile.mkdtemp()) / "budget"
    pooled = 0

    async def run() -> None:
        nonlocal pooled
        stores = [FileWindowStore(directory, lease=30.0) for _ in range(2)]
        account = Window(f"a|{ACCOUNT}", 240, 60.0)
        tokens = [Window(f"i|{ACCOUNT}|fp{i}", 160, 60.0) for i in range(2)]
        pairs = [(tokens[0], account), (tokens[1], account)]
        out: list[tuple[int, Granted]] = []  # in flight
        answered: list[Granted] = []
        for who, op in steps:
            store = stores[who]
            if op == "grant":
                windows = pairs[rng.randrange(2)]
                with counted(store) as transactions:
                    admission = await store.acquire_account(ACCOUNT, windows, QUICK)
                if isinstance(admission, Granted):
                    out.append((who, admission))
                    pooled += transactions[0] == 0
            elif op == "turn":
                await asyncio.sleep(0)
            elif op == "wait":
                await asyncio.sleep(MAX_AGE * 1.5)
            elif op == "429":
                await store.note_429(ACCOUNT, 0.0, QUICK)
            elif out:
                owner, grant = out.pop(rng.randrange(len(out)))
                if op == "answer":
                    await stores[owner].complete(grant, 0.0)
                    answered.append(grant)
                else:
                    await stores[owner].refund(grant)
            counted_now = [g for _, g in out] + answered
            for window in (account, *tokens):
                must = sum(1 for g in counted_now if window in g.windows)
                assert must <= held(stores[0], window) <= window.limit
        for store in stores:
            store.close()

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(directory.parent)
    return pooled


@pytest.mark.parametrize("windows", [[Window(f"a|{ACCOUNT}", 1000, 60.0)]])
async def test_windows_passed_as_a_list_are_granted_one_by_one(
    tmp_path: Path, windows: list[Window]
) -> None:
    """Places are kept per windows tuple (the limiter's own); a list gets no pool."""
    store = FileWindowStore(tmp_path, lease=30.0)
    for _ in range(10):
        assert isinstance(await store.acquire_account(ACCOUNT, windows, RULE), Granted)
    assert held(store, windows[0]) == 10
    store.close()


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    pick=st.lists(st.booleans(), min_size=40, max_size=40),
    renewed=st.lists(st.integers(0, 39), max_size=4),
    absent=st.lists(st.integers(0, 10**6), max_size=3),
)
def test_taking_receipts_out_of_a_window_takes_exactly_those_held(
    blocks: list[int], pick: list[bool], renewed: list[int], absent: list[int]
) -> None:
    """Places reserved together lie side by side and come out as one slice; whatever the
    layout (a run split by a renewal that moved one of them, receipts not held), exactly
    the held ones leave and the rest stay in order."""
    from array import array

    from amo_pipelines.budget._filestate import Log

    log = Log(array("d"), array("Q"))
    rid = 10**7
    for index, size in enumerate(blocks):  # one fill each: consecutive receipts, one until
        log.add_many(float(index % 3), array("Q", range(rid, rid + size)))
        rid += size + 1
    for index in renewed:  # a heartbeat gives a pending place a later until
        if index < len(log.ids):
            moved = log.ids[index]
            until = log.pop(moved)
            assert until is not None
            log.add(until + 5.0, moved)
    before = list(zip(log.untils, log.ids, strict=True))
    wanted = [r for (_, r), chosen in zip(before, pick, strict=False) if chosen]
    taken = log.take(wanted + absent)
    assert sorted(taken) == sorted(wanted)
    assert list(zip(log.untils, log.ids, strict=True)) == [e for e in before if e[1] not in wanted]
