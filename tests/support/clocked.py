"""Run SDK calls on virtual time: a client whose every wait goes through one FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from amo_pipelines import AmoClient, CircuitBreaker, FakeClock, RateLimiter, RetryPolicy
from amo_pipelines.testing import MockTransport
from support.constants import ACCOUNT as ACCOUNT  # test_problem.py imports it from here

T = TypeVar("T")
TOKEN = "tok-SECRET-clocked-0b1e"


def clocked_client(
    transport: MockTransport,
    clock: FakeClock,
    *,
    limiter: RateLimiter | None = None,
    breaker: CircuitBreaker | None = None,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> AmoClient:
    """A client on ``clock``: limiter, breaker, retry backoff and batch pauses.

    Jitter is fixed at half the ceiling so waits are predictable.
    """
    return AmoClient(
        subdomain="example",
        access_token=TOKEN,
        transport=transport,
        clock=clock,
        rate_limiter=limiter or RateLimiter(clock=clock),
        circuit_breaker=breaker or CircuitBreaker(clock=clock),
        retry=retry or RetryPolicy(clock=clock, random_source=lambda: 0.5),
        **kwargs,
    )


async def drive(clock: FakeClock, awaitable: Awaitable[T], *, limit: float = 3600.0) -> T:
    """Await ``awaitable`` while moving virtual time from one deadline to the next."""
    task = asyncio.ensure_future(awaitable)
    idle_rounds = 0
    while not task.done():
        await clock.settle()
        if task.done():
            break
        deadline = clock.next_deadline
        if deadline is None:
            idle_rounds += 1
            if idle_rounds > 100:
                task.cancel()
                raise AssertionError("the call waits on something other than the clock")
            await asyncio.sleep(0)
            continue
        idle_rounds = 0
        if deadline > limit:
            task.cancel()
            raise AssertionError(f"the call would wait until t={deadline}")
        await clock.advance_to(deadline)
    return task.result()
