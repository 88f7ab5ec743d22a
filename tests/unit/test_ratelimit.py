"""The rate limiter, on virtual time: exact windows, FIFO, cancellation, 429 support."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import weakref
from collections import Counter, defaultdict
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from amo_pipelines import FakeClock, InMemoryWindowStore, Limit, RateLimiter, RateLimitStoreError
from amo_pipelines.budget.limiter import Admission, Denied, Granted, Window, shared_limiter

ACCOUNT = "acme.amocrm.ru"
KEY = "fp-1f2e3d4c"  # stands for a token fingerprint
EPS = 1e-9

Log = list[tuple[str, float]]
T = TypeVar("T")


def make(clock: FakeClock, **kwargs: object) -> RateLimiter:
    """A limiter on ``clock`` with a 10 ms margin unless the test says otherwise."""
    kwargs.setdefault("margin", 0.01)
    return RateLimiter(clock=clock, **kwargs)  # type: ignore[arg-type]


async def request(
    limiter: RateLimiter,
    clock: FakeClock,
    log: Log,
    label: str,
    *,
    account: str = ACCOUNT,
    integration: str | None = KEY,
    hold: float = 0.0,
) -> None:
    async with limiter.slot(account, integration):
        log.append((label, clock.now()))
        if hold:
            await clock.sleep(hold)


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return asyncio.create_task(coro)


async def drain(clock: FakeClock, tasks: Sequence[asyncio.Task[None]], step: float = 1.0) -> None:
    """Advance virtual time until every task has finished."""
    for _ in range(10_000):
        if all(task.done() for task in tasks):
            break
        await clock.advance(step)
    await finish(tasks)


async def finish(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Await tasks that must already be done (a stuck one fails the test, never hangs it)."""
    await asyncio.sleep(0)
    assert all(task.done() for task in tasks), "some requests are still waiting"
    await asyncio.gather(*tasks)


def assert_exact(times: Sequence[float], limit: int, period: float) -> None:
    """No ``limit + 1`` starts in any window of ``period``: t[i + limit] - t[i] >= period."""
    ordered = sorted(times)
    for i in range(len(ordered) - limit):
        assert ordered[i + limit] - ordered[i] >= period - EPS, (i, ordered[i], ordered[i + limit])


async def assert_quiet(limiter: RateLimiter, clock: FakeClock, *accounts: str) -> None:
    """No waiter, no in-flight place, no sleeper, no task and no account state left."""
    await clock.settle()
    for account in accounts or (ACCOUNT,):
        stats = limiter.stats(account)
        assert (stats.waiting, stats.in_flight) == (0, 0)
    assert clock.sleepers == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert limiter.active_accounts == 0


def times_of(log: Log) -> list[float]:
    return [t for _, t in log]


def labels_of(log: Log) -> list[str]:
    return [label for label, _ in log]


# ---------------------------------------------------------------- exactness & throughput


async def test_burst_is_used_and_the_eighth_waits_a_full_window() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i))) for i in range(8)]
    await clock.settle()
    assert times_of(log) == [0.0] * 7
    assert limiter.stats(ACCOUNT).waiting == 1
    await clock.advance(1.0)
    assert len(log) == 7  # the margin is not over yet
    await clock.advance(0.01)
    assert labels_of(log)[-1] == "7"
    assert log[-1][1] == pytest.approx(1.01)
    await finish(tasks)
    await assert_quiet(limiter, clock)


async def test_300_grants_never_put_8_starts_in_any_second() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None, max_in_flight=None)
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i))) for i in range(300)]
    await drain(clock, tasks)
    times = times_of(log)
    assert len(times) == 300
    assert_exact(times, 7, 1.0)
    assert_exact(times, 7, 1.01)  # the margin really is added
    assert times.count(0.0) == 7
    assert labels_of(log) == [str(i) for i in range(300)]  # FIFO
    await assert_quiet(limiter, clock)


async def test_throughput_70_grants_at_7_per_second_finish_at_9_plus_margins() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i))) for i in range(70)]
    await drain(clock, tasks, step=0.25)
    # Ten bursts of 7, one window (1 s + 10 ms margin) apart: the last starts at 9.09.
    assert max(times_of(log)) == pytest.approx(9 * 1.01)
    for batch in range(10):
        assert times_of(log)[7 * batch : 7 * batch + 7] == pytest.approx([batch * 1.01] * 7)


@pytest.mark.parametrize("shuffle", [False, True])
async def test_several_integrations_share_the_account_limit_at_full_speed(shuffle: bool) -> None:
    clock = FakeClock()
    limiter = make(clock, max_in_flight=None)  # 7/s per integration, 50/s per account
    log: Log = []
    labels = [f"k{i % 10}" for i in range(400)]
    if shuffle:
        random.Random(7).shuffle(labels)
    tasks = [spawn(request(limiter, clock, log, k, integration=k)) for k in labels]
    await drain(clock, tasks)
    assert_exact(times_of(log), 50, 1.01)
    per_key: dict[str, list[float]] = defaultdict(list)
    batches: dict[float, Counter[str]] = defaultdict(Counter)
    for key, t in log:
        per_key[key].append(t)
        batches[round(t, 6)][key] += 1
    for key_times in per_key.values():
        assert_exact(key_times, 7, 1.01)
    # Work-conserving: a batch is short of 50 only if every integration that still had
    # waiters had used its 7 in that batch.
    for t, batch in batches.items():
        if sum(batch.values()) < 50:
            later = {key for key, when in log if when > t + EPS}
            assert all(batch[key] == 7 for key in later), (t, batch)
    if not shuffle:
        # Round-robin arrivals: 5 per integration per batch, 8 full batches of 50.
        assert max(times_of(log)) == pytest.approx(7 * 1.01)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_randomized_arrivals_holds_and_cancellations(seed: int) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    limiter = make(
        clock,
        integration_limit=Limit(3, 1.0),
        account_limit=Limit(5, 1.0),
        max_in_flight=4,
    )
    accounts = ["a.amocrm.ru", "b.kommo.com"]
    keys = ["k1", "k2", "k3"]
    arrivals: dict[tuple[str, str], list[int]] = defaultdict(list)
    grants: dict[tuple[str, str], list[int]] = defaultdict(list)
    account_times: dict[str, list[float]] = defaultdict(list)
    key_times: dict[tuple[str, str], list[float]] = defaultdict(list)
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)

    async def one(n: int, account: str, key: str, delay: float, hold: float) -> None:
        await clock.sleep(delay)
        arrivals[account, key].append(n)
        async with limiter.slot(account, key):
            grants[account, key].append(n)
            account_times[account].append(clock.now())
            key_times[account, key].append(clock.now())
            running[account] += 1
            peak[account] = max(peak[account], running[account])
            try:
                await clock.sleep(hold)
            finally:
                running[account] -= 1

    async def cancel_later(task: asyncio.Task[None], delay: float) -> None:
        await clock.sleep(delay)
        task.cancel()

    tasks = []
    cancellers = []
    for n in range(200):
        args = (rng.choice(accounts), rng.choice(keys), rng.uniform(0, 8), rng.uniform(0, 0.6))
        task = spawn(one(n, *args))
        tasks.append(task)
        if rng.random() < 0.1:
            cancellers.append(spawn(cancel_later(task, rng.uniform(0, 12))))
    for _ in range(1000):
        if all(t.done() for t in tasks):
            break
        await clock.advance(0.5)
    assert all(t.done() for t in tasks), "some requests are still waiting"
    results = await asyncio.gather(*tasks, *cancellers, return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    for account in accounts:
        assert_exact(account_times[account], 5, 1.01)
        assert peak[account] <= 4
    for pair, times in key_times.items():
        assert_exact(times, 3, 1.01)
        # FIFO per integration: grants follow arrivals (cancelled waiters drop out).
        granted = set(grants[pair])
        assert grants[pair] == [n for n in arrivals[pair] if n in granted]
    assert sum(len(g) for g in grants.values()) >= 200 - len(cancellers)
    await assert_quiet(limiter, clock, *accounts)


# ---------------------------------------------------------------- fairness


async def test_waiters_on_one_key_are_granted_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = make(clock, integration_limit=Limit(2, 1.0), account_limit=None)
    log: Log = []
    tasks = []
    for i in range(12):
        tasks.append(spawn(request(limiter, clock, log, str(i))))
        await clock.advance(0.1)  # arrivals spread while the window is busy
    await drain(clock, tasks)
    assert labels_of(log) == [str(i) for i in range(12)]
    assert_exact(times_of(log), 2, 1.01)


async def test_a_saturated_integration_does_not_hold_up_the_others() -> None:
    clock = FakeClock()
    limiter = make(clock, integration_limit=Limit(1, 1.0))
    log: Log = []
    first = spawn(request(limiter, clock, log, "a1", integration="a"))
    second = spawn(request(limiter, clock, log, "a2", integration="a"))  # waits for "a"
    await clock.advance(0.2)
    other = spawn(request(limiter, clock, log, "b1", integration="b"))
    await clock.settle()
    assert log == [("a1", 0.0), ("b1", 0.2)]
    await drain(clock, [first, second, other])
    assert labels_of(log)[-1] == "a2" and log[-1][1] == pytest.approx(1.01)


async def test_a_waiter_needing_both_windows_is_first_for_the_account() -> None:
    clock = FakeClock()
    limiter = make(clock, margin=0.0, integration_limit=Limit(1, 1.0), account_limit=Limit(2, 1.0))
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, "a1", integration="a"))]
    await clock.advance(0.2)
    tasks.append(spawn(request(limiter, clock, log, "a2", integration="a")))  # integration full
    await clock.advance(0.3)
    tasks.append(spawn(request(limiter, clock, log, "b1", integration="b")))  # takes the account
    await clock.advance(0.1)
    tasks.append(spawn(request(limiter, clock, log, "c1", integration="c")))  # account full
    await drain(clock, tasks, step=0.1)
    # At 1.0 one account place frees: a2 arrived before c1, so it gets it.
    assert log == [
        ("a1", 0.0),
        ("b1", pytest.approx(0.5)),
        ("a2", pytest.approx(1.0)),
        ("c1", pytest.approx(1.5)),
    ]


async def test_a_waiter_held_by_the_account_window_is_not_overtaken() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=Limit(2, 1.0))
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, f"x{i}", integration="x")) for i in range(3)]
    await clock.advance(0.2)
    tasks += [spawn(request(limiter, clock, log, name, integration=name)) for name in "yz"]
    await drain(clock, tasks)
    assert labels_of(log) == ["x0", "x1", "x2", "y", "z"]
    assert times_of(log) == pytest.approx([0.0, 0.0, 1.01, 1.01, 2.02])


# ---------------------------------------------------------------- cancellation


async def test_cancelled_waiters_consume_nothing_and_the_rest_move_up() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    log: Log = []
    tasks = {i: spawn(request(limiter, clock, log, str(i))) for i in range(17)}
    await clock.advance(0.5)
    assert limiter.stats(ACCOUNT).waiting == 10
    for i in (7, 9, 11):  # the head and two in the middle
        tasks[i].cancel()
    await clock.settle()
    assert limiter.stats(ACCOUNT).waiting == 7
    await drain(clock, [t for i, t in tasks.items() if i not in (7, 9, 11)])
    for i in (7, 9, 11):
        assert tasks[i].cancelled()
    assert labels_of(log)[7:] == ["8", "10", "12", "13", "14", "15", "16"]
    # Seven places at 1.01 were free for exactly the seven survivors.
    assert times_of(log)[7:] == pytest.approx([1.01] * 7)
    await assert_quiet(limiter, clock)


async def test_cancelling_every_waiter_leaves_no_state_task_or_sleeper() -> None:
    clock = FakeClock()
    limiter = make(clock)
    log: Log = []
    granted = [spawn(request(limiter, clock, log, str(i))) for i in range(7)]
    waiting = [spawn(request(limiter, clock, log, f"w{i}")) for i in range(5)]
    await clock.settle()
    assert clock.sleepers == 1  # the account's scheduler waits for the window
    for task in waiting:
        task.cancel()
    await clock.settle()
    results = await asyncio.gather(*granted, *waiting, return_exceptions=True)
    assert [type(r) for r in results[7:]] == [asyncio.CancelledError] * 5
    await assert_quiet(limiter, clock)
    # The cancelled ones used no place: all 7 places of the next window are free.
    late = [spawn(request(limiter, clock, log, f"late{i}")) for i in range(7)]
    await clock.advance(1.01)
    await finish(late)
    assert times_of(log)[7:] == pytest.approx([1.01] * 7)


async def test_a_waiter_cancelled_right_after_its_grant_hands_it_back() -> None:
    clock = FakeClock()
    limiter = make(clock, integration_limit=Limit(2, 1.0), account_limit=None, max_in_flight=1)
    log: Log = []
    release = asyncio.Event()

    async def holder() -> None:
        async with limiter.slot(ACCOUNT, KEY):
            log.append(("h", clock.now()))
            await release.wait()

    held = spawn(holder())
    await clock.settle()
    racer = spawn(request(limiter, clock, log, "racer"))
    behind = spawn(request(limiter, clock, log, "behind"))
    await clock.settle()
    assert limiter.stats(ACCOUNT).waiting == 2
    release.set()
    # Run the loop step by step until the racer is granted but has not resumed yet.
    for _ in range(20):
        if limiter.stats(ACCOUNT).waiting == 1:
            break
        await asyncio.sleep(0)
    assert limiter.stats(ACCOUNT).waiting == 1 and limiter.stats(ACCOUNT).in_flight == 1
    assert not racer.done() and labels_of(log) == ["h"]
    racer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await racer
    await clock.settle()
    await finish([held, behind])
    # The racer's rate place and in-flight place went to the next waiter at once: with a
    # limit of 2, "behind" could not have started at t=0 had the racer's grant been kept.
    assert log == [("h", 0.0), ("behind", 0.0)]
    await assert_quiet(limiter, clock)


async def test_cancelling_inside_the_slot_frees_the_in_flight_place() -> None:
    clock = FakeClock()
    limiter = make(clock, max_in_flight=1)
    log: Log = []
    long = spawn(request(limiter, clock, log, "long", hold=100))
    nxt = spawn(request(limiter, clock, log, "next"))
    await clock.advance(1)
    assert labels_of(log) == ["long"]
    long.cancel()
    await clock.settle()
    assert log[-1] == ("next", 1.0)
    await finish([nxt])
    await assert_quiet(limiter, clock)


# ---------------------------------------------------------------- in-flight cap


async def test_in_flight_cap_bounds_concurrency_and_keeps_order() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, integration_limit=None, account_limit=None, max_in_flight=2)
    events = [asyncio.Event() for _ in range(5)]
    entered: list[int] = []

    async def job(i: int) -> None:
        async with limiter.slot(ACCOUNT, KEY):
            entered.append(i)
            await events[i].wait()

    tasks = [spawn(job(i)) for i in range(5)]
    await clock.settle()
    assert entered == [0, 1]
    assert limiter.stats(ACCOUNT).in_flight == 2
    assert limiter.stats(ACCOUNT).waiting == 3
    events[1].set()
    await clock.settle()
    assert entered == [0, 1, 2]
    events[0].set()
    events[2].set()
    await clock.settle()
    assert entered == [0, 1, 2, 3, 4]
    for event in events:
        event.set()
    await finish(tasks)
    await assert_quiet(limiter, clock)


async def test_other_accounts_are_independent() -> None:
    clock = FakeClock()
    limiter = make(clock, max_in_flight=1)
    log: Log = []
    tasks = [
        spawn(request(limiter, clock, log, "a", account="a.amocrm.ru", hold=5)),
        spawn(request(limiter, clock, log, "b", account="b.amocrm.ru", hold=5)),
    ]
    await clock.settle()
    assert log == [("a", 0.0), ("b", 0.0)]
    await drain(clock, tasks)
    await assert_quiet(limiter, clock, "a.amocrm.ru", "b.amocrm.ru")


async def test_no_limits_at_all_grants_everything_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        clock=clock, integration_limit=None, account_limit=None, max_in_flight=None
    )
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i))) for i in range(100)]
    await finish(tasks)
    assert times_of(log) == [0.0] * 100


# ---------------------------------------------------------------- 429 support


async def test_pause_stops_grants_and_keeps_the_queue_order() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i))) for i in range(9)]  # 7 go, 2 wait
    await clock.advance(0.5)
    limiter.pause(ACCOUNT, 2.0)
    limiter.pause(ACCOUNT, 0.5)  # a shorter pause does not shorten the first
    assert limiter.stats(ACCOUNT).paused_for == pytest.approx(2.0)
    tasks.append(spawn(request(limiter, clock, log, "new")))  # no fast path while paused
    await clock.advance(1.99)
    assert len(log) == 7
    await clock.advance(0.01)
    assert labels_of(log)[7:] == ["7", "8", "new"]
    assert times_of(log)[7:] == pytest.approx([2.5] * 3)
    await finish(tasks)
    assert limiter.stats(ACCOUNT).paused_for == 0.0
    await assert_quiet(limiter, clock)


async def test_pause_applies_to_the_fast_path_and_then_expires() -> None:
    clock = FakeClock()
    limiter = make(clock)
    limiter.pause(ACCOUNT, 1.0)
    limiter.pause(ACCOUNT, 0.0)  # ignored
    log: Log = []
    task = spawn(request(limiter, clock, log, "x"))
    await clock.advance(0.99)
    assert log == []
    await clock.advance(0.01)
    assert log == [("x", 1.0)]
    await finish([task])
    await assert_quiet(limiter, clock)


async def test_penalize_halves_the_rate_and_recovers_one_step_per_clean_window() -> None:
    clock = FakeClock()
    limiter = make(clock)  # 7 and 50 per second
    limiter.penalize(ACCOUNT)
    stats = limiter.stats(ACCOUNT)
    assert (stats.integration_limit, stats.account_limit) == (3, 25)
    limiter.penalize(ACCOUNT)  # same window (same burst of 429s): not applied again
    assert limiter.stats(ACCOUNT).integration_limit == 3
    seen = []
    for _ in range(6):
        await clock.advance(1.01)
        seen.append(limiter.stats(ACCOUNT).integration_limit)
    assert seen == [4, 4, 5, 6, 7, 7]
    assert limiter.stats(ACCOUNT).account_limit == 50
    await assert_quiet(limiter, clock)


async def test_penalty_applies_to_grants_and_compounds_across_windows() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    limiter.penalize(ACCOUNT)
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i))) for i in range(11)]
    await drain(clock, tasks, step=0.5)
    # 3 at t=0; the window and a recovery step end together at 1.01: 4 more; then 4.
    assert times_of(log) == pytest.approx([0.0] * 3 + [1.01] * 4 + [2.02] * 4)
    limiter.penalize(ACCOUNT)  # more than a window later: halves again (0.7 -> 0.35)
    assert limiter.stats(ACCOUNT).integration_limit == 2
    for _ in range(3):
        limiter.penalize(ACCOUNT)
        await clock.advance(1.02)
    assert limiter.stats(ACCOUNT).integration_limit == 1  # floor: never below 1


async def test_abort_waiters_fails_the_queue_but_not_the_requests_in_flight() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    log: Log = []
    granted = [spawn(request(limiter, clock, log, str(i), hold=0.5)) for i in range(7)]
    queued = [spawn(request(limiter, clock, log, f"q{i}")) for i in range(3)]
    await clock.settle()
    assert limiter.abort_waiters(ACCOUNT, ConnectionAbortedError("blocked")) == 3
    assert limiter.abort_waiters("other.amocrm.ru", ConnectionAbortedError()) == 0
    await clock.settle()
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(r, ConnectionAbortedError) for r in results)
    await drain(clock, granted, step=0.5)
    assert len(log) == 7
    await assert_quiet(limiter, clock)


# ---------------------------------------------------------------- sharing


def test_shared_limiter_is_one_per_event_loop_and_dies_with_it() -> None:
    async def grab() -> RateLimiter:
        first = shared_limiter()
        assert shared_limiter() is first
        async with first.slot(ACCOUNT, KEY):
            pass
        return first

    one = asyncio.run(grab())
    two = asyncio.run(grab())
    assert one is not two
    ref = weakref.ref(one)
    del one
    gc.collect()
    assert ref() is None  # nothing kept it alive once its loop was gone


async def test_shared_limiter_differs_in_a_loop_of_another_thread() -> None:
    mine = shared_limiter()

    async def other() -> RateLimiter:
        return shared_limiter()

    theirs = await asyncio.to_thread(asyncio.run, other())
    assert theirs is not mine
    assert shared_limiter() is mine


async def test_one_limiter_passed_to_two_clients_shares_the_budgets() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=Limit(10, 1.0))
    log: Log = []

    async def client(name: str, key: str, count: int) -> None:
        # Each "client" issues its requests one after the other, as an SDK client would.
        for i in range(count):
            await request(limiter, clock, log, f"{name}{i}", integration=key)

    tasks = [
        spawn(client("a", "k1", 20)),
        spawn(client("b", "k1", 20)),  # the same token in another client
        spawn(client("c", "k2", 20)),
        spawn(client("d", "k3", 20)),
    ]
    await drain(clock, tasks)
    assert_exact(times_of(log), 10, 1.01)
    k1 = [t for label, t in log if label[0] in "ab"]
    assert_exact(k1, 7, 1.01)
    await assert_quiet(limiter, clock)


def test_a_limiter_can_move_on_from_a_finished_loop() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)

    async def burst(n: int) -> list[float]:
        log: Log = []
        await asyncio.gather(*(request(limiter, clock, log, str(i)) for i in range(n)))
        return times_of(log)

    async def later() -> list[float]:
        await clock.advance(0.5)
        task = spawn(burst(3))
        await clock.advance(0.51)
        return await task

    assert asyncio.run(burst(5)) == [0.0] * 5
    # The windows outlive the loop: 2 places left at 0.5, the third waits for t=1.01.
    assert asyncio.run(later()) == pytest.approx([0.5, 0.5, 1.01])


def test_a_limiter_in_use_by_another_loop_refuses() -> None:
    limiter = RateLimiter()
    loop = asyncio.new_event_loop()
    try:
        held = limiter.slot(ACCOUNT, KEY)
        loop.run_until_complete(held.__aenter__())

        async def elsewhere() -> None:
            async with limiter.slot(ACCOUNT, KEY):
                pass

        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(elsewhere())
        loop.run_until_complete(held.__aexit__(None, None, None))
    finally:
        loop.close()


# ---------------------------------------------------------------- store


class FlakyStore:
    """An in-memory store that starts failing on demand."""

    def __init__(self) -> None:
        self.inner = InMemoryWindowStore()
        self.broken = False

    async def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        if self.broken:
            raise ConnectionError("store is down")
        return await self.inner.acquire(windows, now)

    async def complete(self, grant: Granted, at: float) -> None:
        await self.inner.complete(grant, at)

    async def refund(self, grant: Granted) -> None:
        await self.inner.refund(grant)


async def test_a_failing_store_fails_the_waiters_instead_of_hanging() -> None:
    clock = FakeClock()
    store = FlakyStore()
    limiter = make(clock, account_limit=None, store=store)
    log: Log = []
    first = [spawn(request(limiter, clock, log, str(i))) for i in range(9)]
    await clock.settle()
    store.broken = True
    await clock.advance(1.01)
    await clock.settle()
    results = await asyncio.gather(*first, return_exceptions=True)
    assert results[:7] == [None] * 7
    for error in results[7:]:
        assert isinstance(error, RateLimitStoreError)
        assert isinstance(error.__cause__, ConnectionError)
    with pytest.raises(RateLimitStoreError) as caught:  # the fast path too: nothing sent
        await request(limiter, clock, log, "x")
    assert isinstance(caught.value.__cause__, ConnectionError)
    await assert_quiet(limiter, clock)
    store.broken = False
    await request(limiter, clock, log, "y")
    assert labels_of(log)[-1] == "y" and log[-1][1] == pytest.approx(1.01)


async def test_the_store_is_not_asked_when_no_limit_applies() -> None:
    clock = FakeClock()
    store = FlakyStore()
    store.broken = True  # any question to the store would fail the request
    limiter = make(clock, integration_limit=None, account_limit=None, store=store)
    log: Log = []
    await asyncio.gather(*(request(limiter, clock, log, str(i)) for i in range(20)))
    assert len(log) == 20 and len(store.inner) == 0
    await assert_quiet(limiter, clock)
    store.broken = False  # with one limit on, the store counts again
    counted = make(clock, account_limit=None, store=store)
    await request(counted, clock, log, "x")
    assert len(store.inner) == 1


async def test_in_memory_store_counts_refunds_and_forgets_expired_keys() -> None:
    store = InMemoryWindowStore()
    windows = (Window("k", 2, 1.0), Window("a", 3, 1.0))
    first = await store.acquire(windows, 0.0)
    second = await store.acquire(windows, 0.2)
    assert isinstance(first, Granted) and isinstance(second, Granted)
    await store.complete(first, 0.0)
    denied = await store.acquire(windows, 0.5)
    assert isinstance(denied, Denied) and denied.blocking == (0,)
    assert denied.retry_after == pytest.approx(0.5)
    await store.refund(second)
    third = await store.acquire(windows, 0.5)
    assert isinstance(third, Granted)
    await store.complete(third, 0.5)
    assert len(store) == 2
    await store.acquire((Window("other", 1, 1.0),), 100.0)  # sweeps the idle keys
    assert len(store) == 1


async def test_a_grant_counts_until_its_answer_and_a_period_after_it() -> None:
    # The server may see a request at any moment between the grant and the answer, so a
    # slow request (a big POST) holds its place until answered, then for a whole period.
    store = InMemoryWindowStore()
    windows = (Window("k", 1, 1.0),)
    slow = await store.acquire(windows, 0.0)
    assert isinstance(slow, Granted)
    for now in (1.0, 5.0, 100.0):
        denied = await store.acquire(windows, now)
        assert isinstance(denied, Denied) and denied.retry_after == float("inf")
    await store.complete(slow, 100.3)
    denied = await store.acquire(windows, 100.5)
    assert isinstance(denied, Denied) and denied.retry_after == pytest.approx(0.8)
    assert isinstance(await store.acquire(windows, 101.3), Granted)


async def test_the_next_window_opens_a_period_after_the_answers() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    sent: list[float] = []

    async def call(hold: float) -> None:
        async with limiter.slot("acct", "integ"):
            sent.append(clock.now())
            await clock.sleep(hold)  # the request takes this long to be answered

    tasks = [spawn(call(0.25)) for _ in range(7)] + [spawn(call(0.0))]
    await clock.advance(5)
    await asyncio.gather(*tasks)
    assert sent[:7] == [0.0] * 7
    assert sent[7] == pytest.approx(1.25 + limiter.margin)


# ---------------------------------------------------------------- hygiene


async def test_keys_are_never_shown_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "fp-SECRET-FINGERPRINT"
    clock = FakeClock()
    limiter = make(clock, account_limit=None)
    caplog.set_level(logging.DEBUG)
    log: Log = []
    tasks = [spawn(request(limiter, clock, log, str(i), integration=secret)) for i in range(9)]
    await clock.settle()
    limiter.pause(ACCOUNT, 0.5)
    limiter.penalize(ACCOUNT)
    window = Window(f"i|{ACCOUNT}|{secret}", 7, 1.01)
    shown = " ".join(
        [
            repr(limiter),
            repr(limiter.stats(ACCOUNT)),
            repr(window),
            repr(Granted(at=0.0, windows=(window,))),
            repr(limiter.slot(ACCOUNT, secret)),
            caplog.text,
        ]
    )
    assert secret not in shown
    await drain(clock, tasks)


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError):
        Limit(0, 1.0)
    with pytest.raises(ValueError):
        Limit(7, 0.0)
    with pytest.raises(ValueError):
        RateLimiter(margin=-0.1)
    with pytest.raises(ValueError):
        RateLimiter(max_in_flight=0)
    with pytest.raises(ValueError):
        RateLimiter(penalty_factor=1.0)
    with pytest.raises(ValueError):
        RateLimiter().slot("")


async def test_a_slot_is_single_use() -> None:
    clock = FakeClock()
    limiter = make(clock)
    slot = limiter.slot(ACCOUNT, KEY)
    async with slot:
        pass
    with pytest.raises(RuntimeError):
        async with slot:
            pass


async def test_the_default_limiter_on_the_real_clock_lets_a_burst_through() -> None:
    limiter = RateLimiter()
    assert (limiter.integration_limit, limiter.account_limit) == (Limit(7), Limit(50))
    for _ in range(7):  # within the burst: no waiting, so no real sleep
        async with limiter.slot(ACCOUNT, KEY):
            pass
    assert limiter.stats(ACCOUNT).integration_limit == 7


# ---------------------------------------------------------------- the fake clock


async def test_fake_clock_wakes_sleepers_in_deadline_order_at_their_own_time() -> None:
    clock = FakeClock(start=10.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))
        if name == "a":  # a sleep started on the way is honoured within the same jump
            await clock.sleep(0.5)
            woke.append(("a2", clock.now()))

    tasks = [spawn(sleeper("c", 3)), spawn(sleeper("a", 1)), spawn(sleeper("b", 2))]
    await clock.settle()
    assert clock.sleepers == 3
    assert clock.next_deadline == 11.0
    await clock.advance(5)
    assert woke == [("a", 11.0), ("a2", 11.5), ("b", 12.0), ("c", 13.0)]
    assert clock.now() == 15.0
    assert clock.sleepers == 0 and clock.next_deadline is None
    await finish(tasks)


async def test_fake_clock_forgets_cancelled_sleepers_and_never_goes_back() -> None:
    clock = FakeClock()
    task = spawn(clock.sleep(1))
    await clock.settle()
    assert clock.sleepers == 1
    task.cancel()
    await clock.settle()
    assert clock.sleepers == 0
    await clock.sleep(0)  # does not park
    with pytest.raises(ValueError):
        await clock.advance(-1)
    await clock.advance_to(2.0)
    await clock.advance_to(1.0)
    assert clock.now() == 2.0


async def test_idle_accounts_are_kept_for_their_next_request_but_bounded() -> None:
    clock = FakeClock()
    limiter = make(clock, integration_limit=None, account_limit=None, max_in_flight=None)
    for i in range(1000):  # a worker serving many accounts, one request each
        async with limiter.slot(f"acct-{i}.amocrm.ru", KEY):
            pass
        assert limiter.active_accounts == 0  # idle state is not live state
    # The memory bound is the behaviour under test, and it has no public view.
    assert len(limiter._accounts) <= 64
    limiter.penalize("acct-999.amocrm.ru")  # a kept account still takes a penalty
    assert limiter.active_accounts == 1


async def test_many_tokens_on_one_busy_account_keep_the_window_cache_bounded() -> None:
    clock = FakeClock()
    limiter = make(clock, account_limit=None, max_in_flight=None)
    async with limiter.slot(ACCOUNT, "held"):  # keeps the account busy throughout
        for i in range(200):
            async with limiter.slot(ACCOUNT, f"fp-{i}"):
                pass
        assert len(limiter._accounts[ACCOUNT].windows) <= 64  # no public view either
    assert limiter.stats(ACCOUNT).in_flight == 0
