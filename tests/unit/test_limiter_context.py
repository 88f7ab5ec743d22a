"""The rate limiter's pump (the task that grants waiting requests) starts in a context of
its own: it must not keep alive what the request that woke it had in its context (an
application's request object, a tracing span) while it goes on granting others."""

from __future__ import annotations

import asyncio
import gc
import weakref
from contextvars import ContextVar
from typing import Any

from amo_pipelines import FakeClock, InMemoryWindowStore, Limit, RateLimiter
from amo_pipelines.budget.limiter import Hold

ACCOUNT = "acme.amocrm.ru"
KEY = "fp-1f2e3d4c"
callers: ContextVar[object | None] = ContextVar("an application's request", default=None)


class AppRequest:
    """Something an application keeps in a context variable while it serves a request."""


async def take(limiter: RateLimiter) -> Any:
    got = limiter.take(ACCOUNT, KEY)
    return got if isinstance(got, Hold) else await got


async def test_the_pump_does_not_keep_the_context_of_the_request_that_woke_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        clock=clock,
        integration_limit=Limit(2, 1.0),
        account_limit=None,
        store=InMemoryWindowStore(),
    )
    first, second = await take(limiter), await take(limiter)  # the window is full

    async def serving(request: AppRequest) -> Any:
        callers.set(request)
        return await take(limiter)  # waits: the pump starts here, in this context

    app_request = AppRequest()
    alive = weakref.ref(app_request)
    woke = asyncio.ensure_future(serving(app_request))
    await asyncio.sleep(0)
    others = [asyncio.ensure_future(take(limiter)) for _ in range(2)]
    await asyncio.sleep(0)
    del app_request

    await clock.advance(0.25)
    limiter.settle(first)
    limiter.settle(second)
    await clock.advance(1.0)  # two places again: the first two waiters get them
    assert woke.done() and others[0].done() and not others[1].done()
    grants = [woke.result(), others[0].result()]
    del woke
    gc.collect()
    assert alive() is None  # the pump, still waiting to grant the last one, let it go

    for grant in grants:
        limiter.settle(grant)
    await clock.advance(1.0)
    assert others[1].done()
    limiter.settle(others[1].result())
    assert limiter.stats(ACCOUNT).in_flight == 0
