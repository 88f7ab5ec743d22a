"""AmoClient.fetch and fetch_optional (what an empty answer means to each); a closed
transport."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.constants import PIPELINES
from yarl import URL

from amo_pipelines import (
    AiohttpTransport,
    AmoClient,
    MockTransport,
    Pipeline,
    Request,
    RequestNotSentError,
    Response,
    Transport,
    UnexpectedResponseError,
)
from amo_pipelines.testing import empty_response, json_response

PIPELINE = {
    "id": 7,
    "name": "Sales",
    "sort": 1,
    "is_main": True,
    "is_unsorted_on": True,
    "is_archive": False,
    "account_id": 1,
    "_embedded": {"statuses": []},
}


@pytest.mark.parametrize(
    "empty",
    [
        empty_response(204),
        Response(status=200, headers={"Content-Type": "application/json"}, body=b""),
    ],
)
async def test_fetch_refuses_an_empty_answer_and_fetch_optional_reads_it_as_none(
    transport: MockTransport, amo: AmoClient, empty: Response
) -> None:
    transport.add(empty, empty)
    with pytest.raises(UnexpectedResponseError, match="expected a JSON body"):
        await amo.fetch("PATCH", f"{PIPELINES}/7", Pipeline, json={"name": "x"})
    assert await amo.fetch_optional("GET", f"{PIPELINES}/7", Pipeline) is None
    assert [(r.method, r.url.path) for r in transport.requests] == [
        ("PATCH", f"{PIPELINES}/7"),
        ("GET", f"{PIPELINES}/7"),
    ]


async def test_both_parse_a_body_into_the_model(transport: MockTransport, amo: AmoClient) -> None:
    transport.add(json_response(PIPELINE), json_response(PIPELINE))
    got = await amo.fetch("GET", f"{PIPELINES}/7", Pipeline)
    assert (got.id, got.name, got.is_main) == (7, "Sales", True)
    assert await amo.fetch_optional("GET", f"{PIPELINES}/7", Pipeline) == got


async def test_fetch_optional_still_refuses_a_body_of_the_wrong_shape(
    transport: MockTransport, amo: AmoClient
) -> None:
    transport.add(json_response({"id": "seven"}))
    with pytest.raises(UnexpectedResponseError, match="not a Pipeline"):
        await amo.fetch_optional("GET", f"{PIPELINES}/7", Pipeline)


@pytest.mark.parametrize("make", [MockTransport, AiohttpTransport])
async def test_a_closed_transport_refuses_to_send(make: Callable[[], Transport]) -> None:
    # MockTransport answers as the aiohttp transport does, so tests see what users would.
    transport = make()
    await transport.aclose()
    request = Request(method="GET", url=URL("https://example.amocrm.ru" + PIPELINES))
    with pytest.raises(RequestNotSentError, match="closed"):
        await transport.send(request)
