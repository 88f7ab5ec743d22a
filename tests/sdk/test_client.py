"""The client's lifecycle and configuration, and the default aiohttp transport against real
local servers (an aiohttp app for well-behaved answers, raw sockets for broken ones)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support import spec_examples as P
from support.constants import PIPELINES
from yarl import URL

from amo_pipelines import (
    AccountBlockedError,
    AmoClient,
    ApiError,
    InvalidInputError,
    LongLivedToken,
    NewPipeline,
    NewStatus,
    PipelineUpdate,
    RateLimitedError,
    Request,
    RequestNotSentError,
    RequestTimeoutError,
    Response,
    ResponseLostError,
    TransportError,
    UnauthorizedError,
)
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import sealed_headers

# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://example.amocrm.ru",  # plain http to a real host
        "http://localhost.evil.com",
        "http://10.0.0.1",
        "ftp://example.amocrm.ru",
        "https://example.amocrm.ru/api/v4",
        "https://example.amocrm.ru/x/",
        "https://user:secret@example.amocrm.ru",
        "https://user@example.amocrm.ru",
        "https://example.amocrm.ru?token=1",
        "https://example.amocrm.ru/#frag",
        "example.amocrm.ru",
        "/api/v4",
        "",
        123,
    ],
)
def test_bad_base_url(base_url: Any, token: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(base_url=base_url, access_token=token)
    assert info.value.field == "base_url"


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("https://example.amocrm.ru", "https://example.amocrm.ru"),
        ("https://example.amocrm.ru/", "https://example.amocrm.ru"),
        ("https://example.kommo.com:8443", "https://example.kommo.com:8443"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://127.5.6.7:1", "http://127.5.6.7:1"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        (URL("https://example.amocrm.ru"), "https://example.amocrm.ru"),
    ],
)
def test_good_base_url(base_url: Any, origin: str, token: str) -> None:
    # Outside any event loop: the default transport must not make its session yet
    # (aiohttp refuses to make one without a running loop).
    amo = AmoClient(base_url=base_url, access_token=token)
    assert str(amo.base_url) == origin


@pytest.mark.parametrize(
    "subdomain",
    ["evil.com/x", "a.b", "Example", "-x", "", "ex ample", "example\n", "x@y", "x:1", "ü", 5],
)
def test_bad_subdomain(subdomain: Any, token: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(subdomain=subdomain, access_token=token)
    assert info.value.field == "subdomain"


@pytest.mark.parametrize(
    "domain", ["evil.com", "amocrm.ru.evil.com", "AMOCRM.RU", "kommo.ru", "", "amocrm.ru/"]
)
def test_bad_domain(domain: str, token: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(subdomain="example", domain=domain, access_token=token)
    assert info.value.field == "domain"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "https://example.amocrm.ru", "subdomain": "example"},
        {},
        {"subdomain": "example", "access_token": None},
        {"subdomain": "example", "access_token": ""},
        {"subdomain": "example", "access_token": "  "},
        {"subdomain": "example", "access_token": 12345},
    ],
)
def test_bad_account_or_credentials(kwargs: dict[str, Any]) -> None:
    kwargs = {"access_token": "tok", **kwargs}
    with pytest.raises(InvalidInputError):
        AmoClient(**kwargs)


def test_token_and_auth_together_rejected(token: str) -> None:
    with pytest.raises(InvalidInputError):
        AmoClient(subdomain="example", access_token=token, auth=RefreshingAuth())


async def test_transport_and_session_together_rejected(token: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidInputError):
            AmoClient(
                subdomain="example", access_token=token, transport=MockTransport(), session=session
            )
        assert not session.closed
    with pytest.raises(InvalidInputError):
        AmoClient(subdomain="example", access_token=token, transport=MockTransport(), timeout=5)


# --- lifecycle --------------------------------------------------------------------------


async def test_async_with_closes_the_client(token: str) -> None:
    transport = MockTransport(responses=[json_response(P.pipelines_json())])
    async with AmoClient(subdomain="example", access_token=token, transport=transport) as amo:
        assert not amo.closed
        await amo.pipelines.list()
    assert amo.closed
    # A transport the caller passed in is the caller's to close.
    assert not transport.closed


async def test_async_with_closes_on_error(token: str) -> None:
    transport = MockTransport(responses=[problem_response(401, "no")])
    with pytest.raises(UnauthorizedError):
        async with AmoClient(subdomain="example", access_token=token, transport=transport) as amo:
            await amo.pipelines.list()
    assert amo.closed


async def test_aclose_twice_and_use_after_close(token: str) -> None:
    transport = MockTransport()
    amo = AmoClient(subdomain="example", access_token=token, transport=transport)
    await amo.aclose()
    await amo.aclose()
    assert amo.closed
    with pytest.raises(RuntimeError, match="closed"):
        await amo.pipelines.list()
    with pytest.raises(RuntimeError, match="closed"):
        await amo.statuses.create(1, [NewStatus(name="x", sort=1)])
    assert transport.requests == []


class RefreshingAuth:
    """An AuthProvider that refreshes its token once after a 401."""

    def __init__(self) -> None:
        self.tokens = ["old-token", "new-token"]
        self.refreshed = 0

    async def token(self) -> str:
        return self.tokens[0]

    async def on_unauthorized(self, request: Request, response: Response) -> bool:
        if self.refreshed:
            return False
        self.refreshed += 1
        self.tokens.pop(0)
        return True

    @property
    def fingerprint(self) -> str:
        return "refreshing"


async def test_auth_provider_refreshes_once_after_401() -> None:
    auth = RefreshingAuth()
    transport = MockTransport(
        responses=[problem_response(401, "expired"), json_response(P.pipelines_json())]
    )
    async with AmoClient(subdomain="example", auth=auth, transport=transport) as amo:
        assert await amo.pipelines.list() == []
    assert [r.headers["authorization"] for r in transport.requests] == [
        "Bearer old-token",
        "Bearer new-token",
    ]


async def test_auth_provider_gives_up_after_one_refresh() -> None:
    auth = RefreshingAuth()
    transport = MockTransport(responses=[problem_response(401), problem_response(401)])
    async with AmoClient(subdomain="example", auth=auth, transport=transport) as amo:
        with pytest.raises(UnauthorizedError):
            await amo.pipelines.list()
    assert len(transport.requests) == 2


async def test_mock_transport_raises_queued_failures_and_awaits_handlers(
    make_client: Callable[..., AmoClient],
) -> None:
    async def handler(request: Request) -> Response:
        await asyncio.sleep(0)
        return json_response(P.pipeline_json(name="from handler"))

    lost = ResponseLostError("dropped", method="PATCH", path=f"{PIPELINES}/1")
    transport = MockTransport(handler, responses=[lost])
    async with make_client(subdomain="example", transport=transport) as amo:
        with pytest.raises(ResponseLostError) as info:
            await amo.pipelines.update(1, PipelineUpdate(sort=2))
        assert info.value is lost
        updated = await amo.pipelines.update(1, PipelineUpdate(sort=2))
    assert updated.name == "from handler"
    assert transport.json_bodies() == [{"sort": 2}, {"sort": 2}]


# --- leak detection ---------------------------------------------------------------------


@contextmanager
def no_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Collect what unclosed aiohttp sessions / connectors / transports report.

    aiohttp reports an unclosed session twice: a ResourceWarning and an error logged by the
    ``asyncio`` logger through the loop's exception handler. Both are caught here.
    """
    found: list[str] = []
    caplog.set_level(logging.ERROR, logger="asyncio")
    start = len(caplog.records)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        gc.collect()
    found += [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    found += [r.getMessage() for r in caplog.records[start:] if "nclosed" in r.getMessage()]


async def test_leak_detector_sees_an_unclosed_session(caplog: pytest.LogCaptureFixture) -> None:
    """The check the next tests rely on does catch a leak."""
    with no_leaks(caplog) as found:
        session = aiohttp.ClientSession()
        del session
    assert any("Unclosed client session" in text for text in found)


# --- a well-behaved local server --------------------------------------------------------


class LocalAccount:
    """A tiny account on 127.0.0.1 that records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.target_hits = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        path = request.path
        if path == "/target":
            self.target_hits += 1
            return web.json_response(P.pipelines_json())
        if path == f"{PIPELINES}/302":
            raise web.HTTPFound(location="/target")
        if path == f"{PIPELINES}/307":
            raise web.HTTPTemporaryRedirect(location="/target")
        if path == f"{PIPELINES}/403":
            return web.Response(
                status=403,
                text="<html><title>Account blocked</title></html>",
                content_type="text/html",
            )
        if path == f"{PIPELINES}/429":
            return web.json_response(
                {"title": "Too Many Requests", "status": 429},
                status=429,
                headers={"Retry-After": "3"},
                content_type="application/problem+json",
            )
        if request.method == "DELETE":
            return web.Response(status=204)
        if request.method == "POST":
            items = json.loads(body)
            created = [
                P.pipeline_json(id=100 + i, name=item["name"], request_id=item["request_id"])
                for i, item in enumerate(items)
            ]
            return web.json_response(
                P.pipelines_json(*created), content_type="application/hal+json"
            )
        if path.endswith("/statuses"):
            return web.json_response(
                P.statuses_json(P.status_json()), content_type="application/hal+json"
            )
        if path == PIPELINES:
            return web.json_response(
                P.pipelines_json(P.pipeline_json()), content_type="application/hal+json"
            )
        return web.json_response(P.pipeline_json(), content_type="application/hal+json")


@pytest.fixture
async def local_account() -> AsyncIterator[tuple[LocalAccount, str]]:
    account = LocalAccount()
    server = TestServer(account.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield account, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_default_transport_on_the_wire(
    local_account: tuple[LocalAccount, str], token: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, url = local_account
    with no_leaks(caplog) as found:
        amo = AmoClient(base_url=url, access_token=token)
        pipelines = await amo.pipelines.list()
        created = await amo.pipelines.create([NewPipeline(name="Новая", sort=3)])
        await amo.pipelines.delete(5)
        await amo.aclose()
        await amo.aclose()
        del amo
    assert found == []
    assert [p.id for p in pipelines] == [3177727]
    assert [p.name for p in created] == ["Новая"]

    by_method = {seen["method"]: seen for seen in server.seen}
    get, post, delete = by_method["GET"], by_method["POST"], by_method["DELETE"]
    assert [seen["method"] for seen in server.seen].count("POST") == 1
    assert (get["method"], get["path"], get["query"]) == ("GET", PIPELINES, {})
    assert get["headers"]["Authorization"] == f"Bearer {token}"
    assert "application/hal+json" in get["headers"]["Accept"]
    assert get["headers"]["User-Agent"].startswith("amo_pipelines/")
    assert "Content-Type" not in get["headers"]
    assert get["body"] == b""
    assert "Cookie" not in get["headers"]

    assert post["method"] == "POST"
    assert post["headers"]["Content-Type"] == "application/json"
    assert json.loads(post["body"]) == [
        {"name": "Новая", "sort": 3, "is_main": False, "is_unsorted_on": True, "request_id": "0"}
    ]
    assert (delete["method"], delete["path"]) == ("DELETE", f"{PIPELINES}/5")
    assert "Content-Type" not in delete["headers"]


async def test_query_reaches_the_server(
    local_account: tuple[LocalAccount, str], token: str
) -> None:
    server, url = local_account
    async with AmoClient(base_url=url, access_token=token) as amo:
        await amo.pipelines.get(9)
        statuses = await amo.statuses.list(9, with_descriptions=True)
    assert [s.id for s in statuses] == [32392159]
    assert server.seen[1]["query"] == {"with": "descriptions"}
    assert server.seen[1]["path"] == f"{PIPELINES}/9/statuses"


async def test_urls_are_reused_per_path_and_query(token: str) -> None:
    transport = MockTransport(lambda request: json_response({}))
    base = "https://acme.amocrm.ru"
    path = f"{PIPELINES}/1"
    async with AmoClient(base_url=base, access_token=token, transport=transport) as amo:
        await amo.request("GET", path)
        await amo.request("GET", path)
        await amo.request("GET", path, query={"with": "descriptions"})
        await amo.request("GET", path, query={"with": ["a", "b"]})  # type: ignore[dict-item]
        for _ in range(2):  # a refused path is refused every time, never remembered
            with pytest.raises(InvalidInputError):
                await amo.request("GET", f"{PIPELINES}/../1")
    urls = [str(request.url) for request in transport.requests]
    assert urls == [
        f"{base}{path}",
        f"{base}{path}",
        f"{base}{path}?with=descriptions",
        f"{base}{path}?with=a&with=b",
    ]
    assert transport.requests[0].url is transport.requests[1].url


def test_request_headers_are_lower_cased_and_copied() -> None:
    url = URL("https://acme.amocrm.ru/api/v4/leads/pipelines")
    mixed = {"Accept": "application/json", "X-Trace": "1"}
    assert dict(Request(method="GET", url=url, headers=mixed).headers) == {
        "accept": "application/json",
        "x-trace": "1",
    }
    lower = {"accept": "application/json"}
    request = Request(method="GET", url=url, headers=lower)
    lower["accept"] = "text/html"  # the caller's dict changes; the request does not
    assert dict(request.headers) == {"accept": "application/json"}


def test_sealed_headers_are_taken_as_they_are() -> None:
    url = URL("https://acme.amocrm.ru/api/v4/leads/pipelines")
    sealed = sealed_headers({"Accept": "application/json"})
    request = Request(method="GET", url=url, headers=sealed)
    assert request.headers is sealed
    assert request.headers["accept"] == "application/json"
    with pytest.raises(TypeError):
        request.headers["accept"] = "text/html"  # type: ignore[index]


async def test_response_headers_from_aiohttp_are_read_only_and_case_insensitive(
    local_account: tuple[LocalAccount, str], token: str
) -> None:
    _, url = local_account
    async with AmoClient(base_url=url, access_token=token) as amo:
        response = await amo.request("GET", f"{PIPELINES}/9")
    assert response.headers["content-type"].startswith("application/hal+json")
    assert response.headers["Content-Type"] == response.headers["content-type"]
    assert response.content_type == "application/hal+json"
    with pytest.raises(TypeError):
        response.headers["content-type"] = "text/html"  # type: ignore[index]


async def test_each_header_set_is_signed_with_the_current_token() -> None:
    class SwitchingToken(LongLivedToken):
        current = "tok-1"

        async def token(self) -> str:
            return self.current

    auth = SwitchingToken("tok-1")
    transport = MockTransport(lambda request: Response(status=204))
    async with AmoClient(subdomain="example", auth=auth, transport=transport) as amo:
        await amo.request("GET", PIPELINES)
        await amo.request("PATCH", f"{PIPELINES}/9", json={"name": "a"})
        auth.current = "tok-2"
        await amo.request("GET", PIPELINES)
        await amo.request("PATCH", f"{PIPELINES}/9", json={"name": "b"})
        await amo.request("GET", PIPELINES)
    seen = [
        (r.method, r.headers["authorization"], r.headers.get("content-type"))
        for r in transport.requests
    ]
    assert seen == [
        ("GET", "Bearer tok-1", None),
        ("PATCH", "Bearer tok-1", "application/json"),
        ("GET", "Bearer tok-2", None),
        ("PATCH", "Bearer tok-2", "application/json"),
        ("GET", "Bearer tok-2", None),
    ]


@pytest.mark.parametrize("status", [302, 307])
async def test_redirects_are_not_followed(
    local_account: tuple[LocalAccount, str], token: str, status: int
) -> None:
    server, url = local_account
    async with AmoClient(base_url=url, access_token=token) as amo:
        with pytest.raises(ApiError) as info:
            await amo.pipelines.get(status)
    assert info.value.status == status
    assert server.target_hits == 0
    assert [seen["path"] for seen in server.seen] == [f"{PIPELINES}/{status}"]


async def test_html_403_from_a_real_server(
    local_account: tuple[LocalAccount, str], make_client: Callable[..., AmoClient]
) -> None:
    _, url = local_account
    async with make_client(base_url=url) as amo:
        with pytest.raises(AccountBlockedError) as blocked:
            await amo.pipelines.get(403)
    assert blocked.value.title == "Account blocked"
    assert blocked.value.content_type == "text/html"  # sent with "; charset=utf-8"


async def test_retry_after_header_from_a_real_server(
    local_account: tuple[LocalAccount, str], make_client: Callable[..., AmoClient]
) -> None:
    _, url = local_account
    async with make_client(base_url=url) as amo:
        with pytest.raises(RateLimitedError) as limited:
            await amo.pipelines.get(429)
    assert limited.value.retry_after == 3.0
    assert limited.value.title == "Too Many Requests"


async def test_borrowed_session_is_used_and_left_open(
    local_account: tuple[LocalAccount, str], token: str
) -> None:
    server, url = local_account
    started: list[str] = []

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        started.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        async with AmoClient(base_url=url, access_token=token, session=session) as amo:
            await amo.pipelines.list()
        assert amo.closed
        assert not session.closed
        assert started == [PIPELINES]
        # Still usable by its owner.
        async with session.get(f"{url}/target") as response:
            assert response.status == 200
    assert server.seen[0]["headers"]["Authorization"] == f"Bearer {token}"


async def test_client_never_used_leaves_nothing_open(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with no_leaks(caplog) as found:
        async with AmoClient(subdomain="example", access_token=token):
            pass
        amo = AmoClient(subdomain="example", access_token=token)
        await amo.aclose()
        del amo
    assert found == []


async def test_closed_default_client_raises(
    local_account: tuple[LocalAccount, str], token: str
) -> None:
    server, url = local_account
    amo = AmoClient(base_url=url, access_token=token)
    await amo.pipelines.list()
    await amo.aclose()
    with pytest.raises(RuntimeError):
        await amo.pipelines.list()
    assert len(server.seen) == 1


# --- broken servers ---------------------------------------------------------------------

Conversation = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1 that plays one scripted part per connection."""

    def __init__(self, part: Conversation) -> None:
        self.part = part
        self.requests = 0
        self.release = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            await self.part(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0.01)  # let handlers finish
        self.server.close()
        await self.server.wait_closed()


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()  # no answer at all: the request was read, then the line dies


async def _truncate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/hal+json\r\n"
        b'Content-Length: 500\r\n\r\n{"_embedded": '
    )
    await writer.drain()
    writer.transport.abort()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SPEAKING NO HTTP\r\n\r\n")
    await writer.drain()


def _stall(server: RawServer) -> Conversation:
    async def part(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.release.wait()

    return part


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _assert_token_hidden(error: BaseException, token: str) -> None:
    for link in _chain(error):
        assert token not in str(link)
        assert token not in repr(link)
        assert token not in repr(getattr(link, "args", ()))


async def test_connection_refused_is_not_sent(
    token: str, make_client: Callable[..., AmoClient]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_client(base_url=f"http://127.0.0.1:{port}") as amo:
        with pytest.raises(RequestNotSentError) as info:
            await amo.pipelines.update(3, PipelineUpdate(name="x"))
    error = info.value
    assert not error.may_have_been_processed
    assert not isinstance(error, ResponseLostError)
    assert (error.method, error.path) == ("PATCH", f"{PIPELINES}/3")
    _assert_token_hidden(error, token)


@pytest.mark.parametrize("part", [_drop, _truncate, _garbage], ids=["drop", "truncate", "garbage"])
async def test_lost_responses(
    part: Conversation, token: str, make_client: Callable[..., AmoClient]
) -> None:
    server = RawServer(part)
    async with server as url, make_client(base_url=url) as amo:
        with pytest.raises(ResponseLostError) as info:
            await amo.pipelines.update(3, PipelineUpdate(name="x"))
    error = info.value
    assert server.requests == 1
    assert error.may_have_been_processed
    assert isinstance(error, TransportError)
    assert not isinstance(error, RequestTimeoutError)
    assert (error.method, error.path) == ("PATCH", f"{PIPELINES}/3")
    _assert_token_hidden(error, token)


@pytest.mark.parametrize("timeout", [0.2, aiohttp.ClientTimeout(total=0.2)])
async def test_slow_server_times_out(
    token: str, timeout: Any, make_client: Callable[..., AmoClient]
) -> None:
    server = RawServer(lambda r, w: asyncio.sleep(0))
    server.part = _stall(server)
    async with server as url, make_client(base_url=url, timeout=timeout) as amo:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            await amo.pipelines.list()
        elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2
    assert server.requests == 1
    error = info.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ResponseLostError)
    assert error.may_have_been_processed
    _assert_token_hidden(error, token)
