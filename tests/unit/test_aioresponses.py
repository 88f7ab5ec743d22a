"""A user who mocks aiohttp with aioresponses mocks the SDK's default transport too."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp
import pytest
from aioresponses import aioresponses
from support import spec_examples as P
from support.constants import PIPELINES
from yarl import URL

from amo_pipelines import (
    AmoClient,
    NewStatus,
    NotFoundError,
    RateLimitedError,
    RequestNotSentError,
    ResponseLostError,
    StatusUpdate,
    UnauthorizedError,
)

ORIGIN = "https://example.amocrm.ru"
PIPELINES_URL = ORIGIN + PIPELINES


async def test_list_is_mocked(token: str) -> None:
    payload = P.find("leads-pipelines.ru.md", "response", "GET", "/api/v4/leads/pipelines")
    with aioresponses() as m:
        m.get(PIPELINES_URL, payload=payload, content_type="application/hal+json")
        async with AmoClient(subdomain="example", access_token=token) as amo:
            pipelines = await amo.pipelines.list()
    assert [p.id for p in pipelines] == [3177727]
    assert pipelines[0].won is not None and pipelines[0].won.color == "#CCFF66"
    ((key, calls),) = m.requests.items()
    assert key == ("GET", URL(PIPELINES_URL))
    (call,) = calls
    headers = call.kwargs["headers"]
    assert headers["authorization"] == f"Bearer {token}"
    assert "content-type" not in headers
    assert call.kwargs["allow_redirects"] is False


async def test_error_status_is_mapped(token: str) -> None:
    with aioresponses() as m:
        m.get(
            PIPELINES_URL,
            status=401,
            payload={"title": "Unauthorized", "status": 401, "detail": "Token expired"},
            content_type="application/problem+json",
        )
        m.get(f"{PIPELINES_URL}/5", status=404, payload={"detail": "Pipeline not found"})
        async with AmoClient(subdomain="example", access_token=token) as amo:
            with pytest.raises(UnauthorizedError) as unauthorized:
                await amo.pipelines.list()
            with pytest.raises(NotFoundError) as not_found:
                await amo.pipelines.get(5)
    assert unauthorized.value.detail == "Token expired"
    assert unauthorized.value.path == "/api/v4/leads/pipelines"
    assert not_found.value.detail == "Pipeline not found"
    assert token not in str(unauthorized.value)
    assert len(m.requests[("GET", URL(PIPELINES_URL))]) == 1


async def test_rate_limit_is_mapped(make_client: Callable[..., AmoClient]) -> None:
    with aioresponses() as m:
        m.get(f"{PIPELINES_URL}/6", status=429, body="", headers={"Retry-After": "4"})
        async with make_client(subdomain="example") as amo:
            with pytest.raises(RateLimitedError) as limited:
                await amo.pipelines.get(6)
    assert limited.value.retry_after == 4.0


async def test_body_and_query_are_visible(make_client: Callable[..., AmoClient]) -> None:
    status_url = f"{PIPELINES_URL}/7/statuses"
    with aioresponses() as m:
        m.post(status_url, payload=P.statuses_json(P.status_json(request_id="0")))
        m.patch(f"{status_url}/8", payload=P.status_json(id=8, name="Новое"))
        m.get(f"{status_url}?with=descriptions", payload=P.statuses_json(), repeat=True)
        m.get(PIPELINES_URL, payload=P.pipelines_json(P.pipeline_json()))  # reconcile watermark
        async with make_client(subdomain="example") as amo:
            created = await amo.statuses.create(7, [NewStatus(name="Этап", sort=10)])
            updated = await amo.statuses.update(7, 8, StatusUpdate(name="Новое"))
            assert await amo.statuses.list(7, with_descriptions=True) == []
    assert created[0].id == 32392159 and updated.name == "Новое"
    (post,) = m.requests[("POST", URL(status_url))]
    assert post.kwargs["headers"]["content-type"] == "application/json"
    assert json.loads(post.kwargs["data"]) == [{"name": "Этап", "sort": 10, "request_id": "0"}]
    (patch,) = m.requests[("PATCH", URL(f"{status_url}/8"))]
    assert json.loads(patch.kwargs["data"]) == {"name": "Новое"}
    assert ("GET", URL(f"{status_url}?with=descriptions")) in m.requests


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (
            aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey(
                    "example.amocrm.ru", 443, True, True, None, None, None
                ),
                OSError(111, "Connection refused"),
            ),
            RequestNotSentError,
        ),
        (aiohttp.ServerDisconnectedError(), ResponseLostError),
    ],
    ids=["refused", "disconnected"],
)
async def test_transport_failures(
    make_client: Callable[..., AmoClient], exception: Exception, expected: type[Exception]
) -> None:
    with aioresponses() as m:
        m.get(PIPELINES_URL, exception=exception)
        async with make_client(subdomain="example") as amo:
            with pytest.raises(expected) as info:
                await amo.pipelines.list()
    assert type(info.value) is expected
