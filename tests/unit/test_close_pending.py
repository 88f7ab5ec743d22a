"""``aclose()`` with calls still pending: they fail at once with ClientClosedError, nothing
is sent once closing began, and the rate-limit slots they held go back to the limiter, so
another client of the same account is not held up behind them."""

from __future__ import annotations

import asyncio

import pytest
from support.clocked import clocked_client, drive
from support.constants import ACCOUNT, NO_PIPELINES, PIPELINES

from amo_pipelines import (
    NO_RETRY,
    AmoClient,
    AmoError,
    CircuitBreaker,
    ClientClosedError,
    FakeClock,
    MemoryTokenStore,
    NewPipeline,
    OAuth2,
    RateLimiter,
    RequestNotSentError,
    ResponseLostError,
    RetryPolicy,
    TokenSet,
)
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import Request, Response


def recording(clock: FakeClock) -> tuple[MockTransport, list[float]]:
    """A transport that answers at once and notes the virtual time of every request."""
    sent: list[float] = []

    def handler(request: Request) -> Response:
        sent.append(clock.now())
        return json_response(NO_PIPELINES)

    return MockTransport(handler), sent


async def test_calls_queued_at_the_limiter_fail_at_once_and_free_the_budget(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(clock=clock)  # 7 per second for the integration
    breaker = CircuitBreaker(clock=clock)
    ours, ours_sent = recording(clock)
    theirs, theirs_sent = recording(clock)
    closing = clocked_client(ours, clock, limiter=limiter, breaker=breaker)
    other = clocked_client(theirs, clock, limiter=limiter, breaker=breaker)  # same token

    calls = [asyncio.ensure_future(closing.request("GET", PIPELINES)) for _ in range(50)]
    await clock.settle()
    assert len(ours_sent) == 7  # the burst; 43 wait for the window
    assert limiter.stats(ACCOUNT).waiting == 43

    await closing.aclose()
    await clock.settle()
    assert clock.now() == 0.0 and all(call.done() for call in calls)
    outcomes = [call.exception() for call in calls]
    assert all(error is None for error in outcomes[:7])
    assert all(isinstance(error, ClientClosedError) for error in outcomes[7:])
    assert "was not sent" in str(outcomes[-1])
    assert limiter.stats(ACCOUNT).waiting == 0 and limiter.stats(ACCOUNT).in_flight == 0

    # The other client of the account gets the first place the window frees (the burst's
    # answers came at t=0, so t=1), not a place behind 43 closed calls (t=7 and later).
    await drive(clock, other.request("GET", PIPELINES))
    assert theirs_sent == [1.0]
    await drive(clock, asyncio.sleep(0))
    assert len(ours_sent) == 7  # nothing of the closed client went out, then or later
    await other.aclose()


async def test_a_call_in_its_retry_backoff_fails_at_once_and_is_not_sent_again(
    clock: FakeClock,
) -> None:
    transport = MockTransport(responses=[problem_response(503, "busy")])
    retry = RetryPolicy(clock=clock, backoff=10.0, random_source=lambda: 1.0)
    amo = clocked_client(transport, clock, retry=retry)
    call = asyncio.ensure_future(amo.request("GET", PIPELINES))
    await clock.settle()
    assert len(transport.requests) == 1 and clock.sleepers == 1  # backing off for 10 s

    await amo.aclose()
    await clock.settle()
    assert call.done() and clock.now() == 0.0
    with pytest.raises(ClientClosedError, match="not sent again"):
        call.result()
    assert len(transport.requests) == 1
    assert clock.sleepers == 0  # the backoff's sleep is gone too


async def test_calls_waiting_for_the_in_flight_cap_fail_and_requests_on_the_wire_land(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(clock=clock, integration_limit=None, max_in_flight=2)
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return json_response(NO_PIPELINES)

    transport = MockTransport(slow)
    amo = clocked_client(transport, clock, limiter=limiter)
    calls = [asyncio.ensure_future(amo.request("GET", PIPELINES)) for _ in range(5)]
    await clock.settle()
    assert len(transport.requests) == 2  # on the wire; three wait for an in-flight place

    closing = asyncio.ensure_future(amo.aclose())
    await clock.settle()
    assert all(isinstance(call.exception(), ClientClosedError) for call in calls[2:])
    assert not closing.done()  # the two on the wire get their answers first

    release.set()
    await closing
    assert [call.result().status for call in calls[:2]] == [200, 200]
    assert len(transport.requests) == 2
    assert limiter.stats(ACCOUNT).in_flight == 0


async def test_a_request_the_transport_did_not_send_gives_its_grant_back(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(clock=clock)
    refused = [RequestNotSentError("connection refused", method="GET", path=PIPELINES)] * 7
    transport, sent = recording(clock)
    transport.add(*refused)
    amo = clocked_client(transport, clock, limiter=limiter, retry=NO_RETRY)
    for _ in range(7):
        with pytest.raises(RequestNotSentError):
            await amo.request("GET", PIPELINES)
    # Seven grants were taken and none was used: the eighth request goes at once.
    await drive(clock, amo.request("GET", PIPELINES))
    assert sent == [0.0]
    await amo.aclose()


async def test_a_cancelled_queued_call_frees_its_place_and_aclose_after_it_is_clean(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(clock=clock)
    transport, sent = recording(clock)
    amo = clocked_client(transport, clock, limiter=limiter)
    calls = [asyncio.ensure_future(amo.request("GET", PIPELINES)) for _ in range(9)]
    await clock.settle()
    calls[7].cancel()
    await clock.settle()
    assert limiter.stats(ACCOUNT).waiting == 1
    await amo.aclose()
    await clock.settle()
    assert calls[7].cancelled()
    assert isinstance(calls[8].exception(), ClientClosedError)
    assert len(sent) == 7
    stats = limiter.stats(ACCOUNT)
    assert stats.waiting == 0 and stats.in_flight == 0


async def test_a_new_call_after_aclose_began_is_refused_and_queues_nothing(
    clock: FakeClock,
) -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return json_response(NO_PIPELINES)

    limiter = RateLimiter(clock=clock)
    transport = MockTransport(slow)
    amo = clocked_client(transport, clock, limiter=limiter)
    first = asyncio.ensure_future(amo.request("GET", PIPELINES))
    await clock.settle()
    closing = asyncio.ensure_future(amo.aclose())
    await clock.settle()
    with pytest.raises(ClientClosedError):
        await amo.request("GET", PIPELINES)
    assert limiter.stats(ACCOUNT).waiting == 0
    release.set()
    await closing
    assert (await first).status == 200
    assert len(transport.requests) == 1


async def test_a_batch_create_waiting_to_reconcile_ends_at_once(clock: FakeClock) -> None:
    def handler(request: Request) -> Response:
        if request.method == "POST":
            raise ResponseLostError("dropped", method="POST", path=PIPELINES)
        return json_response(NO_PIPELINES)  # nothing was created (yet)

    transport = MockTransport(handler)
    amo = clocked_client(transport, clock, reconcile_wait=60.0)
    call = asyncio.ensure_future(amo.pipelines.create([NewPipeline(name="P", sort=1)]))
    for _ in range(10):
        await clock.advance(1.0)  # past the backoffs, into the wait for late commits
    sent = len(transport.requests)
    assert not call.done() and clock.sleepers == 1

    await amo.aclose()
    await clock.settle()
    assert call.done() and isinstance(call.exception(), AmoError)
    assert len(transport.requests) == sent  # nothing after aclose: no list, no resend
    assert clock.sleepers == 0


async def test_a_provider_shared_with_a_closing_client_refreshes_through_the_open_one(
    clock: FakeClock,
) -> None:
    now = 1_700_000_000.0
    oauth_clock = FakeClock(now)
    token_requests: list[str] = []
    release = asyncio.Event()

    def account(name: str) -> MockTransport:
        async def handler(request: Request) -> Response:
            if request.url.path == "/oauth2/access_token":
                token_requests.append(name)
                return json_response(
                    {
                        "token_type": "Bearer",
                        "expires_in": 86400,
                        "access_token": "acc-SECRET-new",
                        "refresh_token": "ref-SECRET-new",
                    },
                    content_type="application/json",
                )
            if name == "closing":
                await release.wait()
            return json_response(NO_PIPELINES)

        return MockTransport(handler)

    tokens = TokenSet("acc-SECRET-old", "ref-SECRET-old", now + 86400, expires_in=86400)
    auth = OAuth2(
        "client-1", "client-SECRET-1", "https://integration.example/cb",
        store=MemoryTokenStore(tokens), clock=oauth_clock,
    )  # fmt: skip
    limiter = RateLimiter(clock=clock)
    open_one, closing_one = (
        AmoClient(
            subdomain="example",
            auth=auth,
            transport=account(name),
            clock=clock,
            rate_limiter=limiter,
            retry=NO_RETRY,
        )
        for name in ("open", "closing")
    )
    on_the_wire = asyncio.ensure_future(closing_one.request("GET", PIPELINES))
    await clock.settle()
    closing = asyncio.ensure_future(closing_one.aclose())  # waits for its request to land
    await clock.settle()
    await oauth_clock.advance(86400)  # the token falls due
    assert (await open_one.request("GET", PIPELINES)).status == 200
    assert token_requests == ["open"]  # not through the client that is closing
    release.set()
    await closing
    assert (await on_the_wire).status == 200
    await open_one.aclose()
