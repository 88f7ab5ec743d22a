"""A client belongs to the event loop that first used it: used from another loop (a second
``asyncio.run()``) it raises WrongEventLoopError and sends nothing, instead of failing deep
inside aiohttp with ``RuntimeError: Event loop is closed``."""

from __future__ import annotations

import asyncio

import pytest
from support.constants import NO_PIPELINES, PIPELINES

from amo_pipelines import AmoClient, AmoError, WrongEventLoopError
from amo_pipelines.testing import MockTransport, json_response

TOKEN = "tok-SECRET-loops"


def test_a_client_used_from_a_second_asyncio_run_raises_a_clear_error() -> None:
    transport = MockTransport(lambda request: json_response(NO_PIPELINES))
    amo = AmoClient(subdomain="example", access_token=TOKEN, transport=transport)

    async def list_pipelines() -> int:
        return (await amo.request("GET", PIPELINES)).status

    assert asyncio.run(list_pipelines()) == 200
    with pytest.raises(WrongEventLoopError, match="event loop that first used it") as caught:
        asyncio.run(list_pipelines())
    assert isinstance(caught.value, AmoError) and isinstance(caught.value, RuntimeError)
    assert "Nothing was sent" in str(caught.value)
    assert len(transport.requests) == 1
    assert not amo.closed


def test_a_client_made_outside_a_loop_binds_to_the_first_loop_that_uses_it() -> None:
    transport = MockTransport(lambda request: json_response(NO_PIPELINES))
    amo = AmoClient(subdomain="example", access_token=TOKEN, transport=transport)

    async def twice() -> None:
        await amo.request("GET", PIPELINES)
        await asyncio.gather(amo.request("GET", PIPELINES), amo.request("GET", PIPELINES))
        await amo.aclose()

    asyncio.run(twice())
    assert len(transport.requests) == 3 and amo.closed
