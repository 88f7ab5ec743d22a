"""The account guard through the client: shared budgets and the circuit breaker."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support.clocked import TOKEN, clocked_client, drive

from amo_pipelines import (
    AccountBlockedError,
    AmoClient,
    CircuitBreaker,
    FakeClock,
    ForbiddenError,
    RateLimiter,
)
from amo_pipelines.testing import MockTransport, html_response, json_response, problem_response
from amo_pipelines.transport import Request, Response

PIPELINE = {
    "id": 7,
    "name": "P",
    "sort": 1,
    "is_main": False,
    "is_unsorted_on": True,
    "account_id": 1,
    "_embedded": {"statuses": []},
}
BLOCKED = "<html><head><title>403 Forbidden</title></head><body>Blocked</body></html>"


def recording(clock: FakeClock, answer: Response | None = None) -> tuple[MockTransport, list]:
    log: list[tuple[float, str, str]] = []

    def handler(request: Request) -> Response:
        log.append((clock.now(), request.url.host or "", request.url.path))
        return answer or json_response(PIPELINE)

    return MockTransport(handler), log


# --- shared budget ----------------------------------------------------------------------


async def test_clients_of_one_account_share_the_default_limiter_and_breaker() -> None:
    a = AmoClient(subdomain="acme", access_token=TOKEN, transport=MockTransport())
    b = AmoClient(subdomain="acme", access_token="other", transport=MockTransport())
    async with a, b:
        assert a.rate_limiter is b.rate_limiter
        assert a.circuit_breaker is b.circuit_breaker


async def test_two_clients_with_one_limiter_share_seven_per_second(clock: FakeClock) -> None:
    transport, log = recording(clock)
    limiter = RateLimiter(clock=clock)
    breaker = CircuitBreaker(clock=clock)
    clients = [clocked_client(transport, clock, limiter=limiter, breaker=breaker) for _ in range(2)]
    calls = [c.pipelines.get(7) for c in clients for _ in range(7)]
    await drive(clock, asyncio.gather(*calls))
    for c in clients:
        await c.aclose()
    per_second = Counter(int(t) for t, _, _ in log)
    assert per_second == {0: 7, 1: 7}
    assert min(t for t, _, _ in log if t > 0) >= 1.0


async def test_accounts_have_budgets_of_their_own(clock: FakeClock) -> None:
    transport, log = recording(clock)
    limiter = RateLimiter(clock=clock)
    a = AmoClient(
        subdomain="a", access_token=TOKEN, transport=transport, rate_limiter=limiter, clock=clock
    )
    b = AmoClient(
        subdomain="b", access_token=TOKEN, transport=transport, rate_limiter=limiter, clock=clock
    )
    await drive(clock, asyncio.gather(*(c.pipelines.get(7) for c in (a, b) for _ in range(7))))
    await a.aclose()
    await b.aclose()
    assert {t for t, _, _ in log} == {0.0}
    assert Counter(host for _, host, _ in log) == {"a.amocrm.ru": 7, "b.amocrm.ru": 7}


# --- circuit breaker --------------------------------------------------------------------


async def test_an_html_403_opens_the_circuit_and_nothing_more_is_sent(clock: FakeClock) -> None:
    transport, log = recording(clock, html_response(403, BLOCKED))
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(AccountBlockedError):
            await drive(clock, amo.pipelines.get(7))
        assert len(log) == 1
        for call in (amo.pipelines.list(), amo.pipelines.get(8), amo.pipelines.delete(9)):
            with pytest.raises(AccountBlockedError) as info:
                await drive(clock, call)
            assert "not sent" in str(info.value)
        assert len(log) == 1
        assert amo.circuit_breaker.is_open("example.amocrm.ru")


async def test_pending_calls_fail_at_once_when_the_account_is_blocked(clock: FakeClock) -> None:
    transport, log = recording(clock, html_response(403, BLOCKED))
    async with clocked_client(transport, clock) as amo:
        outcomes = await drive(
            clock,
            asyncio.gather(*(amo.pipelines.get(7) for _ in range(30)), return_exceptions=True),
        )
    assert all(isinstance(o, AccountBlockedError) for o in outcomes)
    assert len(log) <= 7  # at most the first burst went out
    assert clock.now() < 1.0  # nobody waited for the next window


async def test_a_json_403_alone_is_a_permission_error(clock: FakeClock) -> None:
    transport, log = recording(clock, problem_response(403, "Access denied", title="Forbidden"))
    async with clocked_client(transport, clock) as amo:
        for _ in range(2):
            with pytest.raises(ForbiddenError) as info:
                await drive(clock, amo.pipelines.get(7))
            assert not isinstance(info.value, AccountBlockedError)
    assert len(log) == 2


async def test_a_json_403_soon_after_a_429_is_still_a_permission_error(clock: FakeClock) -> None:
    # Issue 10, item 10: only the block signature opens the circuit, not the timing.
    answers = [
        problem_response(429, "slow", retry_after=1),
        problem_response(403, "Forbidden"),
    ]
    transport, _ = recording(clock)
    transport.add(*answers)
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(ForbiddenError) as info:
            await drive(clock, amo.pipelines.get(7))
        assert not isinstance(info.value, AccountBlockedError)
        assert (await drive(clock, amo.pipelines.get(7))).id == 7
    assert len(transport.requests) == 3


async def test_reset_and_cooldown_close_the_circuit(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock, cooldown=600)
    transport = MockTransport(responses=[html_response(403, BLOCKED), json_response(PIPELINE)])
    async with clocked_client(transport, clock, breaker=breaker) as amo:
        with pytest.raises(AccountBlockedError):
            await drive(clock, amo.pipelines.get(7))
        amo.circuit_breaker.reset("example.amocrm.ru")
        assert (await drive(clock, amo.pipelines.get(7))).id == 7

        transport.add(html_response(403, BLOCKED), json_response(PIPELINE))
        with pytest.raises(AccountBlockedError):
            await drive(clock, amo.pipelines.get(7))
        await clock.advance(599)
        with pytest.raises(AccountBlockedError):
            await drive(clock, amo.pipelines.get(7))
        await clock.advance(1)
        assert (await drive(clock, amo.pipelines.get(7))).id == 7
    assert len(transport.requests) == 4


async def test_one_blocked_client_stops_its_siblings(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    limiter = RateLimiter(clock=clock)
    transport = MockTransport(responses=[html_response(403, BLOCKED)])
    a = clocked_client(transport, clock, limiter=limiter, breaker=breaker)
    b = clocked_client(transport, clock, limiter=limiter, breaker=breaker)
    async with a, b:
        with pytest.raises(AccountBlockedError):
            await drive(clock, a.pipelines.get(7))
        with pytest.raises(AccountBlockedError):
            await drive(clock, b.pipelines.list())
    assert len(transport.requests) == 1
