"""The rate limiter's public acquire / release / give_back, on virtual time."""

from __future__ import annotations

import asyncio

from amo_pipelines import FakeClock, InMemoryWindowStore, Limit, RateLimiter

ACCOUNT = "acme.amocrm.ru"
KEY = "fp-1f2e3d4c"


def one_per_second(clock: FakeClock) -> RateLimiter:
    return RateLimiter(
        clock=clock,
        integration_limit=Limit(1, 1.0),
        account_limit=None,
        store=InMemoryWindowStore(),
    )


async def test_a_hold_given_back_lets_the_next_waiter_go_at_once() -> None:
    clock = FakeClock()
    limiter = one_per_second(clock)
    hold = await limiter.acquire(ACCOUNT, KEY)
    waiter = asyncio.ensure_future(limiter.acquire(ACCOUNT, KEY))
    await clock.settle()
    assert not waiter.done() and limiter.stats(ACCOUNT).waiting == 1
    limiter.give_back(hold)  # nothing was sent: the window forgets the grant
    await clock.settle()
    assert waiter.done() and clock.now() == 0.0
    await limiter.release(waiter.result())
    assert limiter.stats(ACCOUNT).in_flight == 0


async def test_a_released_hold_stays_counted_for_a_period_after_its_answer() -> None:
    clock = FakeClock()
    limiter = one_per_second(clock)
    hold = await limiter.acquire(ACCOUNT, KEY)
    assert limiter.stats(ACCOUNT).in_flight == 1
    await clock.advance(0.5)  # the answer takes half a second
    await limiter.release(hold)
    assert limiter.stats(ACCOUNT).in_flight == 0
    waiter = asyncio.ensure_future(limiter.acquire(ACCOUNT, KEY))
    await clock.advance(0.99)
    assert not waiter.done()  # the window counts from the answer: 0.5 + 1.0
    await clock.advance(0.01)
    assert waiter.done() and clock.now() == 1.5
    await limiter.release(waiter.result())


async def test_a_hold_never_shows_the_integration_key() -> None:
    limiter = one_per_second(FakeClock())
    hold = await limiter.acquire(ACCOUNT, KEY)
    assert KEY not in repr(hold) and ACCOUNT not in repr(hold)
    await limiter.release(hold)
