"""The limiter's places without a coroutine (RateLimiter.take and settle, the stores'
AnswersAtOnce calls): counted exactly as through acquire and release."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import FakeClock, InMemoryWindowStore, Limit, RateLimiter
from amo_pipelines.budget.file import FileWindowStore
from amo_pipelines.budget.limiter import Hold
from amo_pipelines.budget.windows import Admission, Granted, Window, granted

from ._async_only import AsyncOnly

ACCOUNT = "acme.amocrm.ru"
KEY = "fp-1f2e3d4c"


def two_per_second(clock: FakeClock, store: object) -> RateLimiter:
    return RateLimiter(
        clock=clock,
        integration_limit=Limit(2, 1.0),
        account_limit=None,
        store=store,  # type: ignore[arg-type]
    )


async def test_a_free_place_comes_at_once_and_a_full_window_makes_it_wait() -> None:
    clock = FakeClock()
    limiter = two_per_second(clock, InMemoryWindowStore())
    first, second = limiter.take(ACCOUNT, KEY), limiter.take(ACCOUNT, KEY)
    assert isinstance(first, Hold) and isinstance(second, Hold)
    third = limiter.take(ACCOUNT, KEY)
    assert not isinstance(third, Hold)  # the window is full: a coroutine to wait with
    waiting = asyncio.ensure_future(third)
    await clock.advance(0.25)  # the answers come after a quarter of a second
    assert limiter.settle(first) is None and limiter.settle(second) is None
    await clock.advance(0.99)
    assert not waiting.done()  # counted from the answer: 0.25 + 1.0
    await clock.advance(0.01)
    assert waiting.done() and clock.now() == 1.25
    await limiter.release(waiting.result())
    assert limiter.stats(ACCOUNT).in_flight == 0


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["take", "settle", "give back"]), st.floats(0, 0.7)),
        max_size=30,
    )
)
def test_at_once_and_through_coroutines_the_windows_grant_the_same(
    steps: list[tuple[str, float]],
) -> None:
    """The same script of takes, answers, give-backs and waits on a store that answers at
    once and on one that is only async: the same grants, at the same virtual times."""

    async def run(store: object) -> list[tuple[str, float]]:
        clock = FakeClock()
        limiter = two_per_second(clock, store)
        held: list[Hold] = []
        log: list[tuple[str, float]] = []
        for action, wait in steps:
            if action == "take":
                taken = limiter.take(ACCOUNT, KEY)
                if not isinstance(taken, Hold):  # its first try, or a wait: let it run
                    task = asyncio.ensure_future(taken)
                    await clock.settle()
                    if not task.done():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
                    taken = task.result() if task.done() and not task.cancelled() else None
                if taken is None:
                    log.append(("full", clock.now()))
                else:
                    held.append(taken)
                    log.append(("granted", clock.now()))
            elif held and action == "settle":
                await limiter.release(held.pop(0))
            elif held:
                limiter.give_back(held.pop(0))
            await clock.advance(wait)
        for hold in held:
            await limiter.release(hold)
        assert limiter.stats(ACCOUNT).in_flight == 0
        return log

    at_once = asyncio.run(run(InMemoryWindowStore()))
    waited = asyncio.run(run(AsyncOnly()))
    assert at_once == waited


async def test_a_store_without_the_calls_at_once_is_awaited() -> None:
    clock = FakeClock()
    limiter = two_per_second(clock, AsyncOnly())
    taken = limiter.take(ACCOUNT, KEY)
    assert not isinstance(taken, Hold)
    hold = await taken
    settling = limiter.settle(hold)
    assert settling is not None
    await settling
    assert limiter.stats(ACCOUNT).in_flight == 0


async def test_an_acquire_replaced_on_the_store_sees_every_grant() -> None:
    """Instrumentation that wraps the store's acquire (the rate benchmark records grant
    times that way) must not be bypassed by the calls at once."""
    store = InMemoryWindowStore()
    limiter = RateLimiter(
        clock=FakeClock(), integration_limit=Limit(10, 1.0), account_limit=None, store=store
    )
    seen: list[float] = []
    acquire = store.acquire

    async def recording(windows: Sequence[Window], now: float) -> Admission:
        seen.append(now)
        return await acquire(windows, now)

    store.acquire = recording  # type: ignore[method-assign]
    for _ in range(2):
        await limiter.release(await limiter.acquire(ACCOUNT, KEY))
    taken = limiter.take(ACCOUNT, KEY)
    assert not isinstance(taken, Hold)
    await limiter.release(await taken)
    assert len(seen) == 3


async def test_with_both_limits_off_the_store_is_never_asked() -> None:
    class Refusing(InMemoryWindowStore):
        def acquire_now(
            self, windows: Sequence[Window], now: float, loop: object = None
        ) -> Admission:
            raise AssertionError("asked")

    limiter = RateLimiter(
        clock=FakeClock(), integration_limit=None, account_limit=None, store=Refusing()
    )
    hold = limiter.take(ACCOUNT, KEY)
    assert isinstance(hold, Hold) and limiter.stats(ACCOUNT).in_flight == 1
    assert limiter.settle(hold) is None and limiter.stats(ACCOUNT).in_flight == 0


async def test_a_store_failing_to_record_an_answer_still_frees_the_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(InMemoryWindowStore):
        def complete_now(self, grant: Granted, at: float, loop: object = None) -> None:
            raise OSError("disk full")

    limiter = two_per_second(FakeClock(), Failing())
    hold = limiter.take(ACCOUNT, KEY)
    assert isinstance(hold, Hold)
    with caplog.at_level(logging.WARNING, logger="amo_pipelines.budget.limiter"):
        assert limiter.settle(hold) is None
    assert limiter.stats(ACCOUNT).in_flight == 0
    assert "window store failed (OSError)" in caplog.text


async def test_the_machine_wide_store_grants_at_once_and_counts_across_limiters(
    tmp_path: Path,
) -> None:
    """Two limiters (two processes, as far as the file is concerned) share three places."""
    stores = [FileWindowStore(tmp_path, lease=1.0) for _ in range(2)]
    limiters = [
        RateLimiter(integration_limit=Limit(3, 60.0), account_limit=None, store=store)
        for store in stores
    ]
    try:
        holds = [limiters[i % 2].take(ACCOUNT, KEY) for i in range(3)]
        assert all(isinstance(h, Hold) for h in holds)
        fourth = limiters[1].take(ACCOUNT, KEY)
        assert not isinstance(fourth, Hold)  # the file holds three: the fourth waits
        fourth.close()
        for i, hold in enumerate(holds):
            assert isinstance(hold, Hold)
            limiters[i % 2].give_back(hold)
    finally:
        for store in stores:
            store.close()


def test_granted_is_the_grant_the_class_makes() -> None:
    window = Window("i|acme|fp", 7, 1.0)
    made = granted(1.5, (window,), "ab")
    assert made == Granted(at=1.5, windows=(window,), receipt="ab")
    assert hash(made) == hash(Granted(1.5, (window,), "ab"))
    assert repr(made) == repr(Granted(1.5, (window,), "ab")) and "i|acme" not in repr(made)
