"""What a shared window store promises, for the machine-wide file store and Redis alike.

Two store instances stand for two processes (each has its own file descriptors, or its
own Redis connection, and its own heartbeat); what one records, the other must obey.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.constants import ACCOUNT

from amo_pipelines import (
    NO_RETRY,
    AccountBlockedError,
    AmoClient,
    CircuitBreaker,
    FileWindowStore,
    RateLimiter,
)
from amo_pipelines.budget.windows import (
    Blocked,
    Denied,
    Granted,
    PenaltyRule,
    SharedWindowStore,
    Window,
)
from amo_pipelines.testing import MockTransport, html_response, json_response, problem_response

RULE = PenaltyRule(factor=0.5, step=0.1, interval=1.0, minimum=1 / 64)
TOKEN_WINDOW = Window("i|example.amocrm.ru|fp-1", 7, 1.0)
ACCOUNT_WINDOW = Window("a|example.amocrm.ru", 50, 1.0)
BLOCKED = "<html><head><title>403 Forbidden</title></head><body>Blocked</body></html>"
LEASE = 0.3

Factory = Callable[[], SharedWindowStore]


@pytest.fixture(params=["file", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Make store instances ("processes") sharing one place."""
    if request.param == "file":
        yield lambda: FileWindowStore(tmp_path / "budget", lease=LEASE)
        return
    import redis.asyncio as aioredis

    from amo_pipelines.redis import RedisWindowStore

    url = request.getfixturevalue("redis_url")
    prefix = f"t{os.urandom(4).hex()}"
    clients: list[aioredis.Redis] = []

    def make() -> SharedWindowStore:
        clients.append(aioredis.Redis.from_url(url))
        return RedisWindowStore(clients[-1], prefix=prefix, lease=LEASE)

    # An account's first use in Redis waits out lease + span (see RedisWindowStore): get
    # it over with here, so the tests start from a live account.
    warm = make()
    for _ in range(100):
        admission = await warm.acquire_account(ACCOUNT, [ACCOUNT_WINDOW], RULE)
        if isinstance(admission, Granted):
            await warm.refund(admission)
            break
        assert isinstance(admission, Denied)
        await asyncio.sleep(admission.retry_after)
    yield make
    for client in clients:
        await client.aclose()


async def grants(store: SharedWindowStore, count: int, *windows: Window) -> list[Granted]:
    granted = []
    for _ in range(count):
        admission = await store.acquire_account(ACCOUNT, windows, RULE)
        if isinstance(admission, Granted):
            granted.append(admission)
    return granted


async def test_two_processes_share_the_windows(stores: Factory) -> None:
    a, b = stores(), stores()
    assert len(await grants(a, 5, TOKEN_WINDOW, ACCOUNT_WINDOW)) == 5
    assert len(await grants(b, 5, TOKEN_WINDOW, ACCOUNT_WINDOW)) == 2
    denied = await b.acquire_account(ACCOUNT, [TOKEN_WINDOW, ACCOUNT_WINDOW], RULE)
    assert isinstance(denied, Denied) and denied.blocking == (0,)
    # Pending grants hold their places, so the wait is a whole span at most.
    assert 0 < denied.retry_after <= 1.0


async def test_a_refund_frees_the_place_at_once_and_an_answer_a_span_later(
    stores: Factory,
) -> None:
    a, b = stores(), stores()
    held = await grants(a, 7, TOKEN_WINDOW)
    await a.refund(held[0])
    assert len(await grants(b, 2, TOKEN_WINDOW)) == 1
    await a.complete(held[1], 0.0)
    denied = await b.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE)
    assert isinstance(denied, Denied) and 0.9 < denied.retry_after <= 1.0


async def test_a_429_pauses_and_slows_every_process(stores: Factory) -> None:
    a, b = stores(), stores()
    await a.note_429(ACCOUNT, 5.0, RULE)
    paused = await b.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE)
    assert isinstance(paused, Denied) and 4.5 < paused.retry_after <= 5.0
    await a.note_429(ACCOUNT, 0.0, RULE)  # the same burst: no second penalty, no shorter pause
    c = stores()
    assert isinstance(await c.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE), Denied)


async def test_a_penalty_halves_the_counts_for_every_process(stores: Factory) -> None:
    a, b = stores(), stores()
    await a.note_429(ACCOUNT, 0.0, RULE)
    assert len(await grants(b, 7, TOKEN_WINDOW, ACCOUNT_WINDOW)) == 3  # 7 * 0.5


async def test_a_block_reaches_every_process_until_cleared(stores: Factory) -> None:
    a, b = stores(), stores()
    await a.note_block(ACCOUNT, 900.0, "403 'Forbidden' to GET /api/v4/leads/pipelines")
    blocked = await b.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE)
    assert isinstance(blocked, Blocked) and blocked.retry_after is not None
    assert 899 < blocked.retry_after <= 900 and "GET /api/v4/leads/pipelines" in blocked.note
    await a.note_block(ACCOUNT, None, "blocked")
    forever = await b.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE)
    assert isinstance(forever, Blocked) and forever.retry_after is None
    await b.clear_block(ACCOUNT)
    assert isinstance(await a.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE), Granted)


async def test_the_heartbeat_keeps_a_slow_request_s_places(stores: Factory) -> None:
    a, b = stores(), stores()
    held = await grants(a, 7, TOKEN_WINDOW)
    await asyncio.sleep(3 * LEASE)  # the leases ran out three times; renewed each time
    assert isinstance(await b.acquire_account(ACCOUNT, [TOKEN_WINDOW], RULE), Denied)
    for grant in held:
        await a.complete(grant, 0.0)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.tuples(st.integers(0, 2), st.sampled_from("arc")), max_size=40))
async def test_never_more_grants_held_than_the_limit(
    stores: Factory, steps: list[tuple[int, str]]
) -> None:
    """Any interleaving of acquire / refund / complete across three processes."""
    procs = [stores() for _ in range(3)]
    window = Window(f"i|{ACCOUNT}|fp-{os.urandom(4).hex()}", 3, 30.0)
    held: list[tuple[int, Granted]] = []
    answered = 0
    for proc, op in steps:
        if op == "a":
            admission = await procs[proc].acquire_account(ACCOUNT, [window], RULE)
            if isinstance(admission, Granted):
                held.append((proc, admission))
        elif held:
            owner, grant = held.pop(0)
            if op == "r":
                await procs[owner].refund(grant)
            else:
                await procs[owner].complete(grant, 0.0)  # holds its place for 30 s more
                answered += 1
    placed = await grants(procs[0], 4, window)
    # Three places; an answered grant still holds one for 30 s, a refunded one none.
    assert len(placed) == 3 - len(held) - answered
    for proc, grant in held:
        await procs[proc].refund(grant)
    for grant in placed:
        await procs[0].refund(grant)


async def test_a_block_seen_by_one_client_stops_another_with_its_own_limiter(
    tmp_path: Path,
) -> None:
    """Two clients as two processes would be: own limiter, own breaker, one folder."""
    directory = tmp_path / "budget"
    seen = MockTransport(responses=[html_response(403, BLOCKED)])
    other = MockTransport(responses=[json_response({"id": 1})])
    a = AmoClient(
        subdomain="example",
        access_token="token-a",
        transport=seen,
        retry=NO_RETRY,
        rate_limiter=RateLimiter(store=FileWindowStore(directory)),
        circuit_breaker=CircuitBreaker(),
    )
    b = AmoClient(
        subdomain="example",
        access_token="token-b",
        transport=other,
        retry=NO_RETRY,
        rate_limiter=RateLimiter(store=FileWindowStore(directory)),
        circuit_breaker=CircuitBreaker(),
    )
    async with a, b:
        with pytest.raises(AccountBlockedError):
            await a.request("GET", "/api/v4/leads/pipelines")
        with pytest.raises(AccountBlockedError) as caught:
            await b.request("GET", "/api/v4/leads/pipelines")
        assert "not sent" in str(caught.value) and "token-" not in str(caught.value)
        assert other.requests == []
        await b.rate_limiter.clear_block(ACCOUNT)
        b.circuit_breaker.reset(ACCOUNT)
        await b.request("GET", "/api/v4/leads/pipelines")
        assert len(other.requests) == 1


async def test_a_429_seen_by_one_client_pauses_another_with_its_own_limiter(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "budget"
    seen = MockTransport(responses=[problem_response(429, "slow down", retry_after=30)])
    other = MockTransport(responses=[json_response({"id": 1})])
    limiter_b = RateLimiter(store=FileWindowStore(directory))
    a = AmoClient(
        subdomain="example",
        access_token="token-a",
        transport=seen,
        retry=NO_RETRY,
        rate_limiter=RateLimiter(store=FileWindowStore(directory)),
    )
    b = AmoClient(
        subdomain="example",
        access_token="token-b",
        transport=other,
        retry=NO_RETRY,
        rate_limiter=limiter_b,
    )
    async with a, b:
        with pytest.raises(Exception):  # noqa: B017 - the 429 itself, whatever its class
            await a.request("GET", "/api/v4/leads/pipelines")
        waiting = asyncio.ensure_future(b.request("GET", "/api/v4/leads/pipelines"))
        await asyncio.sleep(0.3)
        assert other.requests == [] and limiter_b.stats(ACCOUNT).waiting == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
