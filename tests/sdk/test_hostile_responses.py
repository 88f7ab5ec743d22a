"""Hostile and malformed answers: every one ends as an AmoError, quickly and in bounded memory.

Issue 10, items 4 (error pages parsed in linear time, a cap on response size), 6 (a 2xx body
of the wrong types is an error, not a quietly wrong model), 10 (a permission 403 does not
open the circuit) and 11 (timeouts that would switch themselves off, connection errors
that say where and why).
"""

from __future__ import annotations

import gzip
import json
import math
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import TOKEN
from support.clocked import clocked_client, drive
from yarl import URL

from amo_pipelines import (
    NO_RETRY,
    AccountBlockedError,
    AiohttpTransport,
    AmoClient,
    ApiError,
    FakeClock,
    ForbiddenError,
    InvalidInputError,
    PipelineUpdate,
    RequestNotSentError,
    ResponseLostError,
    ResponseTooLargeError,
    ServerError,
    UnexpectedResponseError,
)
from amo_pipelines.errors import BODY_KEPT, error_from_response, is_account_block
from amo_pipelines.testing import MockTransport, html_response, json_response, problem_response
from amo_pipelines.transport import Request, Response
from amo_pipelines.transport.aiohttp import DEFAULT_MAX_RESPONSE_BYTES

PIPELINE: dict[str, Any] = {
    "id": 7,
    "name": "P",
    "sort": 1,
    "is_main": False,
    "is_unsorted_on": True,
    "is_archive": False,
    "account_id": 1,
    "_links": {"self": {"href": "https://example.amocrm.ru/api/v4/leads/pipelines/7"}},
    "_embedded": {
        "statuses": [
            {
                "id": 142,
                "name": "Won",
                "sort": 10000,
                "is_editable": False,
                "pipeline_id": 7,
                "color": "#CCFF66",
                "type": 0,
                "account_id": 1,
                "descriptions": [
                    {
                        "id": 1,
                        "account_id": 1,
                        "pipeline_id": 7,
                        "status_id": 142,
                        "level": "newbie",
                        "description": "d",
                        "created_at": "2024-01-02 03:04:05",
                        "updated_at": None,
                        "created_by": 0,
                        "updated_by": None,
                    }
                ],
            }
        ]
    },
}
GET = Request(method="GET", url=URL("https://example.amocrm.ru/api/v4/leads/pipelines"))


# --- item 4: error pages in linear time, bounded bodies ------------------------------------


def test_unclosed_title_tags_are_read_in_linear_time() -> None:
    # ~1 MB of "<title>" without a closing tag: the old DOTALL regex was quadratic on it
    # (0.56 MB blocked the event loop for minutes).
    # No stopwatch (speed is for benchmarks): the parser must look at a bounded prefix
    # only, so the whole body gives exactly what its first 64 KiB give, and it is read
    # with str.find (linear) rather than a backtracking regex.
    body = b"<title>" * 150_000
    for status in (403, 500, 502):
        whole, prefix = (
            error_from_response(
                GET, Response(status=status, headers={"content-type": "text/html"}, body=b)
            )
            for b in (body, body[:BODY_KEPT])
        )
        assert isinstance(whole, ApiError)
        assert (type(whole), whole.title, whole.body) == (type(prefix), prefix.title, prefix.body)
    error = whole
    assert isinstance(error, ServerError)
    assert error.title == "Bad Gateway"  # no title found: the status's own phrase


def test_a_title_past_the_parsed_prefix_is_not_looked_for() -> None:
    late = b" " * BODY_KEPT + b"<title>Late</title>"
    early = b"<html><TITLE lang=en>\n 403 Forbidden \n</TITLE>" + b"x" * 1_000_000
    assert error_from_response(GET, html_response(500, late.decode())).title != "Late"
    blocked = error_from_response(GET, Response(status=403, body=early))
    assert isinstance(blocked, AccountBlockedError)
    assert blocked.title == "403 Forbidden"


async def test_a_hostile_403_page_through_the_client_returns_quickly() -> None:
    clock = FakeClock()
    page = Response(status=403, headers={"content-type": "text/html"}, body=b"<title>" * 150_000)
    transport = MockTransport(responses=[page])
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(AccountBlockedError) as info:
            await drive(clock, amo.pipelines.get(7))
    assert len(info.value.body) <= BODY_KEPT


def test_an_exception_keeps_only_the_start_of_a_large_body() -> None:
    big = b"<html>" + b"a" * (3 * BODY_KEPT)
    error = error_from_response(GET, Response(status=500, body=big))
    assert error.body == big[:BODY_KEPT]
    small = problem_response(404, "Pipeline not found")
    assert error_from_response(GET, small).body == small.body  # small bodies stay whole


async def test_an_unreadable_2xx_keeps_only_the_start_of_its_body(amo: AmoClient) -> None:
    transport = amo._transport
    assert isinstance(transport, MockTransport)
    transport.add(Response(status=200, body=b"<html>" + b"z" * (2 * BODY_KEPT)))
    with pytest.raises(UnexpectedResponseError) as info:
        await amo.pipelines.get(7)
    assert len(info.value.body) == BODY_KEPT


Handler = Callable[[web.Request], Any]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A small aiohttp server on 127.0.0.1 answering every path with ``handler``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client(base_url: str, **kwargs: Any) -> AmoClient:
    kwargs.setdefault("retry", NO_RETRY)
    return AmoClient(base_url=base_url, access_token=TOKEN, **kwargs)


async def test_a_content_length_over_the_cap_is_refused_before_reading() -> None:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000, content_type="application/hal+json")

    async with serving(handler) as url, client(url, max_response_bytes=1000) as amo:
        with pytest.raises(ResponseTooLargeError) as info:
            await amo.pipelines.get(7)
    error = info.value
    assert isinstance(error, ResponseLostError)
    assert (error.status, error.limit, error.size) == (200, 1000, 5000)
    assert error.may_have_been_processed
    assert "may have been processed" in str(error) and "max_response_bytes=1000" in str(error)
    assert TOKEN not in str(error)


async def test_a_streamed_answer_over_the_cap_is_cut_off_on_a_write() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/hal+json"})
        response.enable_chunked_encoding()  # no Content-Length: only reading tells
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"y" * 1024)
        await response.write_eof()
        return response

    async with serving(handler) as url, client(url, max_response_bytes=10_000) as amo:
        with pytest.raises(ResponseTooLargeError) as info:
            await amo.pipelines.update(7, PipelineUpdate(name="renamed"))
        assert info.value.size is None and info.value.may_have_been_processed
        assert info.value.method == "PATCH"
        # The connection was dropped, not reused with the rest of the body in it.
        with pytest.raises(ResponseTooLargeError):
            await amo.pipelines.get(7)


async def test_a_compressed_answer_is_capped_by_its_decompressed_size() -> None:
    bomb = gzip.compress(b" " * 200_000)  # ~200 bytes on the wire

    async def handler(_: web.Request) -> web.Response:
        return web.Response(
            body=bomb,
            headers={"content-type": "application/hal+json", "content-encoding": "gzip"},
        )

    async with serving(handler) as url, client(url, max_response_bytes=50_000) as amo:
        with pytest.raises(ResponseTooLargeError):
            await amo.pipelines.get(7)


async def test_answers_under_the_cap_are_read_whole() -> None:
    body = json.dumps(PIPELINE).encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("stream"):
            response = web.StreamResponse(headers={"content-type": "application/hal+json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(body[:100])
            await response.write(body[100:])
            await response.write_eof()
            return response
        if request.query.get("gzip"):
            return web.Response(
                body=gzip.compress(body),
                headers={"content-type": "application/hal+json", "content-encoding": "gzip"},
            )
        return web.Response(body=body, content_type="application/hal+json")

    async with serving(handler) as url, client(url, max_response_bytes=len(body)) as amo:
        for query in (None, {"stream": "1"}, {"gzip": "1"}):
            response = await amo.request("GET", "/api/v4/leads/pipelines/7", query=query)
            assert response.body == body
        assert (await amo.pipelines.get(7)).id == 7


def test_the_response_cap_is_validated_and_defaults_to_32_mib() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 32 * 1024 * 1024
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(InvalidInputError) as info:
            AmoClient(subdomain="example", access_token=TOKEN, max_response_bytes=bad)
        assert info.value.field == "max_response_bytes"
    with pytest.raises(InvalidInputError) as info:
        AmoClient(
            subdomain="example",
            access_token=TOKEN,
            transport=MockTransport(),
            max_response_bytes=1000,
        )
    assert info.value.field == "transport"


# --- item 6: a 2xx body of the wrong types ---------------------------------------------------


def _status(**changes: Any) -> dict[str, Any]:
    status = dict(PIPELINE["_embedded"]["statuses"][0])
    status.update(changes)
    return {**PIPELINE, "_embedded": {"statuses": [status]}}


def _description(**changes: Any) -> dict[str, Any]:
    status = PIPELINE["_embedded"]["statuses"][0]
    description = {**status["descriptions"][0], **changes}
    return _status(descriptions=[description])


WRONG_TYPES = {
    "is_main 'false'": {**PIPELINE, "is_main": "false"},
    "is_main 0": {**PIPELINE, "is_main": 0},
    "id 5.7": {**PIPELINE, "id": 5.7},
    "id true": {**PIPELINE, "id": True},
    "id '7'": {**PIPELINE, "id": "7"},
    "name 5": {**PIPELINE, "name": 5},
    "sort null": {**PIPELINE, "sort": None},
    "request_id 5": {**PIPELINE, "request_id": 5},
    "statuses a string": {**PIPELINE, "_embedded": {"statuses": "none"}},
    "statuses an object": {**PIPELINE, "_embedded": {"statuses": {}}},
    "href 5": {**PIPELINE, "_links": {"self": {"href": 5}}},
    "status.is_editable 'true'": _status(is_editable="true"),
    "status.type 1.0": _status(type=1.0),
    "status.color null": _status(color=None),
    "descriptions a string": _status(descriptions="[]"),
    "description.created_by 1.5": _description(created_by=1.5),
    "description.created_at 0": _description(created_at=0),
    "description.level 1": _description(level=1),
}


@pytest.mark.parametrize("body", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
async def test_a_2xx_body_of_the_wrong_types_is_an_unexpected_response(
    amo: AmoClient, transport: MockTransport, body: dict[str, Any]
) -> None:
    transport.add(json_response(body))
    with pytest.raises(UnexpectedResponseError) as info:
        await amo.pipelines.get(7)
    assert "not a Pipeline" in str(info.value)


async def test_well_typed_bodies_still_parse_and_unknown_keys_are_welcome(
    amo: AmoClient, transport: MockTransport
) -> None:
    transport.add(json_response({**PIPELINE, "a_future_field": [1, {"x": None}]}))
    pipeline = await amo.pipelines.get(7)
    assert (pipeline.id, pipeline.is_main, pipeline.self_href) == (
        7,
        False,
        PIPELINE["_links"]["self"]["href"],
    )
    (won,) = pipeline.statuses
    assert won.descriptions is not None
    assert won.descriptions[0].created_at is not None
    assert won.descriptions[0].updated_at is None


# --- item 10: only a block opens the circuit --------------------------------------------------


ADMIN_ONLY = problem_response(403, "Account administrator rights required", title="Forbidden")


async def test_a_permission_403_after_a_429_leaves_the_circuit_closed() -> None:
    clock = FakeClock()
    transport = MockTransport(
        responses=[
            problem_response(429, "Too Many Requests", retry_after=1),
            json_response(PIPELINE),  # the GET, retried after the pause
            ADMIN_ONLY,  # a write with a non-admin token
            json_response(PIPELINE),
        ]
    )
    async with clocked_client(transport, clock) as amo:
        assert (await drive(clock, amo.pipelines.get(7))).id == 7
        with pytest.raises(ForbiddenError) as info:
            await drive(clock, amo.pipelines.update(7, PipelineUpdate(name="N")))
        assert not isinstance(info.value, AccountBlockedError)
        assert not amo.circuit_breaker.is_open("example.amocrm.ru")
        assert (await drive(clock, amo.pipelines.get(7))).id == 7  # sent, and answered
    assert len(transport.requests) == 4


@pytest.mark.parametrize(
    "answer",
    [
        html_response(403, "<html><title>403 Forbidden</title><body>Blocked</body></html>"),
        problem_response(403, "Account is blocked for exceeding the rate limit"),
        problem_response(403, "Your IP has been blocked", title="Forbidden"),
        json_response({"errors": {"code": 1, "message": "Аккаунт заблокирован"}}, 403),
        Response(
            status=403,
            headers={"content-type": "text/plain"},
            body=b"Access for this account has been blocked",
        ),
    ],
    ids=["html page", "problem detail", "ip", "errors.message", "text"],
)
async def test_a_403_that_says_blocked_opens_the_circuit(answer: Response) -> None:
    clock = FakeClock()
    transport = MockTransport(responses=[answer])
    async with clocked_client(transport, clock) as amo:
        with pytest.raises(AccountBlockedError):
            await drive(clock, amo.pipelines.get(7))
        with pytest.raises(AccountBlockedError) as info:
            await drive(clock, amo.pipelines.get(7))
        assert "not sent" in str(info.value)
    assert len(transport.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        ADMIN_ONLY,
        problem_response(403, "User is not allowed to edit pipelines"),
        problem_response(403, ""),
        json_response({"errors": {"code": 403, "message": "Forbidden"}}, 403),
    ],
)
def test_the_block_rule_lives_in_errors(answer: Response) -> None:
    error = error_from_response(GET, answer)
    assert isinstance(error, ForbiddenError)
    assert not is_account_block(error)
    blocked = error_from_response(GET, html_response(403))
    assert is_account_block(blocked) and isinstance(blocked, AccountBlockedError)


# --- item 11: timeouts and connection errors ---------------------------------------------


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5, math.nan, math.inf, True, "10"])
def test_a_timeout_that_would_switch_timeouts_off_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(subdomain="example", access_token=TOKEN, timeout=bad)
    assert info.value.field == "timeout"
    with pytest.raises(InvalidInputError) as info:
        AiohttpTransport(timeout=bad)
    assert info.value.field == "timeout"


@pytest.mark.parametrize("name", ["total", "connect", "sock_read", "sock_connect"])
def test_a_client_timeout_with_a_zero_or_negative_bound_is_refused(name: str) -> None:
    for bad in (0, -1.0, math.nan):
        with pytest.raises(InvalidInputError) as info:
            AiohttpTransport(timeout=aiohttp.ClientTimeout(**{name: bad}))
        assert info.value.field == f"timeout.{name}"
    AiohttpTransport(timeout=aiohttp.ClientTimeout(**{name: 2.5}))  # a positive bound is fine


def test_good_timeouts_are_taken() -> None:
    AmoClient(subdomain="example", access_token=TOKEN, timeout=0.5)
    AmoClient(subdomain="example", access_token=TOKEN, timeout=aiohttp.ClientTimeout(total=None))


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there any more


async def test_a_refused_connection_names_host_port_and_the_os_error() -> None:
    port = _closed_port()
    async with client(f"http://127.0.0.1:{port}") as amo:
        with pytest.raises(RequestNotSentError) as info:
            await amo.pipelines.get(7)
    message = str(info.value)
    assert "127.0.0.1" in message and str(port) in message
    assert "Connection refused" in message and "errno" in message
    assert TOKEN not in message and TOKEN not in repr(info.value.args)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
