"""The token chain (a client's route to /oauth2/access_token): only what certainly was not
sent is tried again, after the client's retry backoff on the client's clock, and a client
that closes meanwhile ends the wait with that failure."""

from __future__ import annotations

import asyncio

import pytest

from amo_pipelines import (
    AmoClient,
    FakeClock,
    MemoryTokenStore,
    OAuth2,
    Request,
    RequestNotSentError,
    Response,
    ResponseLostError,
    RetryPolicy,
    TokenSet,
)
from amo_pipelines.testing import MockTransport, json_response

NOW = 1_000_000.0
TOKEN_PATH = "/oauth2/access_token"
FRESH = {
    "token_type": "Bearer",
    "expires_in": 86400,
    "access_token": "acc-new-0002",
    "refresh_token": "ref-new-0002",
}


def provider(clock: FakeClock) -> OAuth2:
    stale = TokenSet(access_token="acc-old-1", refresh_token="ref-old-1", expires_at=NOW - 1)
    return OAuth2(
        "client-1",
        "secret-1",
        "https://example.org/cb",
        store=MemoryTokenStore(stale),
        clock=clock,
        reload_grace=0,
    )


def client(clock: FakeClock, auth: OAuth2, transport: MockTransport) -> AmoClient:
    return AmoClient(
        subdomain="example",
        auth=auth,
        transport=transport,
        clock=clock,
        retry=RetryPolicy(backoff=4.0, random_source=lambda: 0.5),  # backoff 2 s, then 4 s
    )


def not_sent() -> RequestNotSentError:
    return RequestNotSentError("cannot connect", method="POST", path=TOKEN_PATH)


async def test_a_refresh_not_sent_is_tried_again_after_the_backoff_on_the_clients_clock() -> None:
    clock = FakeClock(NOW)
    auth = provider(clock)
    posted: list[float] = []

    def answer(request: Request) -> Response:
        posted.append(clock.now())
        if len(posted) == 1:
            raise not_sent()
        return json_response(FRESH)

    async with client(clock, auth, MockTransport(answer)):
        refresh = asyncio.ensure_future(auth.refresh())
        await clock.settle()
        assert posted == [NOW] and not refresh.done()
        await clock.advance(1.9)
        assert len(posted) == 1
        await clock.advance(0.1)  # virtual time: no real second passes
        assert len(posted) == 2 and refresh.done()
        assert refresh.result().access_token == "acc-new-0002"
    assert posted == [NOW, NOW + 2.0]


async def test_a_refresh_that_may_have_been_processed_is_not_sent_again() -> None:
    clock = FakeClock(NOW)
    auth = provider(clock)
    lost = ResponseLostError("connection lost", method="POST", path=TOKEN_PATH)
    transport = MockTransport(responses=[lost])
    async with client(clock, auth, transport):
        with pytest.raises(ResponseLostError):
            await auth.refresh()
    assert len(transport.requests) == 1


async def test_closing_during_the_backoff_ends_it_with_the_not_sent_failure() -> None:
    clock = FakeClock(NOW)
    auth = provider(clock)
    transport = MockTransport(responses=[not_sent()])
    amo = client(clock, auth, transport)
    refresh = asyncio.ensure_future(auth.refresh())
    await clock.settle()
    assert clock.sleepers == 1  # backing off before the second try
    await amo.aclose()
    with pytest.raises(RequestNotSentError, match="cannot connect"):
        await refresh
    assert len(transport.requests) == 1 and clock.now() == NOW
