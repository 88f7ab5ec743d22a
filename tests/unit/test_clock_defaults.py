"""``AmoClient(clock=...)`` drives every wait, the default limiter and breaker included:
a client on a FakeClock without a limiter or breaker of its own gets ones on that clock,
never the shared system-clock ones of the event loop."""

from __future__ import annotations

import asyncio

from support.clocked import TOKEN, drive
from support.constants import NO_PIPELINES, PIPELINES

from amo_pipelines import AmoClient, FakeClock, RetryPolicy
from amo_pipelines.budget.limiter import shared_limiter
from amo_pipelines.http.circuit import shared_breaker
from amo_pipelines.http.clock import SYSTEM_CLOCK
from amo_pipelines.testing import MockTransport, html_response, json_response
from amo_pipelines.transport import Request, Response


def fake_client(clock: FakeClock, transport: MockTransport) -> AmoClient:
    return AmoClient(
        subdomain="example",
        access_token=TOKEN,
        transport=transport,
        clock=clock,
        retry=RetryPolicy(clock=clock, random_source=lambda: 0.5),
    )


async def test_a_fake_clock_client_gets_a_limiter_and_breaker_on_its_clock() -> None:
    clock = FakeClock()
    async with fake_client(clock, MockTransport()) as amo:
        assert amo.rate_limiter.clock is clock
        assert amo.rate_limiter is not shared_limiter()
        assert amo.circuit_breaker is not shared_breaker()


async def test_clients_on_one_fake_clock_share_its_defaults_and_system_ones_the_shared() -> None:
    clock, other_clock = FakeClock(), FakeClock()
    a, b = fake_client(clock, MockTransport()), fake_client(clock, MockTransport())
    c = fake_client(other_clock, MockTransport())
    plain = AmoClient(subdomain="example", access_token=TOKEN, transport=MockTransport())
    async with a, b, c, plain:
        assert a.rate_limiter is b.rate_limiter and a.circuit_breaker is b.circuit_breaker
        assert c.rate_limiter is not a.rate_limiter
        assert c.circuit_breaker is not a.circuit_breaker
        assert plain.rate_limiter is shared_limiter() and plain.clock is SYSTEM_CLOCK
        assert plain.circuit_breaker is shared_breaker()


async def test_the_eighth_request_waits_one_virtual_second() -> None:
    clock = FakeClock()
    sent: list[float] = []

    def handler(request: Request) -> Response:
        sent.append(clock.now())
        return json_response(NO_PIPELINES)

    async with fake_client(clock, MockTransport(handler)) as amo:
        calls = [amo.request("GET", PIPELINES) for _ in range(8)]
        await drive(clock, asyncio.gather(*calls))
    assert sent == [0.0] * 7 + [1.0]


async def test_the_default_breaker_cools_down_on_virtual_time() -> None:
    clock = FakeClock()
    blocked = html_response(403, "<html><title>Blocked</title></html>")
    transport = MockTransport(lambda request: json_response(NO_PIPELINES)).add(blocked)
    async with fake_client(clock, transport) as amo:
        first = await asyncio.gather(amo.request("GET", PIPELINES), return_exceptions=True)
        assert type(first[0]).__name__ == "AccountBlockedError"
        assert amo.circuit_breaker.is_open("example.amocrm.ru")
        await clock.advance(15 * 60)  # the default cooldown
        assert (await amo.request("GET", PIPELINES)).status == 200
    assert len(transport.requests) == 2
