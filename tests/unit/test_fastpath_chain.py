"""The client's first attempt in one coroutine (http.build.FirstAttempt), its presigned
headers and the transport's fast value constructors: the same requests on the wire and the
same outcomes as the chain composed policy by policy."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from support.clocked import TOKEN, clocked_client, drive
from yarl import URL

from amo_pipelines import (
    AmoClient,
    AmoError,
    FakeClock,
    Limit,
    LongLivedToken,
    RateLimiter,
    RequestNotSentError,
    ResponseLostError,
    RetryPolicy,
    WrongEventLoopError,
)
from amo_pipelines.budget.windows import InMemoryWindowStore
from amo_pipelines.http.chain import AuthPolicy
from amo_pipelines.testing import MockTransport, json_response, problem_response
from amo_pipelines.transport import Request, Response
from amo_pipelines.transport.base import new_request, new_response, sealed_headers

ACCOUNT = "example.amocrm.ru"


class OwnSend(RetryPolicy):
    """A retry policy with a send of its own (here: the inherited one, counted): the
    client must then run every attempt through it, so its chain is the composed one."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sends = 0

    async def send(self, request: Request, next: Any, **kwargs: Any) -> Response:
        self.sends += 1
        return await super().send(request, next, **kwargs)


def retry(clock: FakeClock, own: bool) -> RetryPolicy:
    cls = OwnSend if own else RetryPolicy
    return cls(clock=clock, random_source=lambda: 0.5)


def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(clock=clock, store=InMemoryWindowStore())


def outcome(item: str) -> Response | BaseException:
    if item == "not sent":
        return RequestNotSentError("refused", method="GET", path="/")
    if item == "lost":
        return ResponseLostError("reset", method="GET", path="/")
    status = int(item)
    if status == 429:
        return problem_response(429, "slow down", retry_after=0.5)
    if status >= 400:
        return problem_response(status, "no")
    return json_response({"ok": status})


async def run(
    script: list[str], method: str, own: bool
) -> tuple[str, list[tuple[Any, ...]], int, int]:
    """One request of ``method`` answered by ``script``: what the call gave, what went on
    the wire, the limiter's in-flight count after it, how often the retry was asked."""
    clock = FakeClock()
    transport = MockTransport(responses=[outcome(item) for item in script])
    transport.handler = lambda _request: json_response({"ok": "late"})
    policy = retry(clock, own)
    limits = limiter(clock)
    amo = clocked_client(transport, clock, limiter=limits, retry=policy)
    async with amo:
        body = b"{}" if method in ("POST", "PATCH") else None
        try:
            response = await drive(clock, amo.request(method, "/api/v4/leads/pipelines", body=body))
            result = f"{response.status} {response.body!r}"
        except AmoError as e:
            result = type(e).__name__
        wire = [
            (r.method, str(r.url), sorted(r.headers.items()), r.body, r.idempotent)
            for r in transport.requests
        ]
        in_flight = limits.stats(ACCOUNT).in_flight
    return result, wire, in_flight, getattr(policy, "sends", -1)


ITEMS = st.sampled_from(["200", "204", "404", "429", "500", "503", "not sent", "lost"])


@settings(max_examples=60, deadline=None)
@given(script=st.lists(ITEMS, min_size=1, max_size=5), method=st.sampled_from(["GET", "POST"]))
def test_the_first_attempt_in_one_frame_does_what_the_composed_chain_does(
    script: list[str], method: str
) -> None:
    """Same outcome, same requests on the wire (headers included), every place given
    back: the fused first attempt hands anything but a 2xx to the retry policy as the
    composed chain does."""
    fused = asyncio.run(run(script, method, own=False))
    composed = asyncio.run(run(script, method, own=True))
    assert fused[:3] == composed[:3]
    assert fused[2] == 0
    assert composed[3] == 1  # the policy's own send ran the call, first attempt included
    for _method, _url, headers, _body, _idempotent in fused[1]:
        assert ("authorization", f"Bearer {TOKEN}") in headers


async def test_a_retry_policy_with_its_own_send_sees_the_first_attempt_too() -> None:
    clock = FakeClock()
    policy = OwnSend(clock=clock)
    transport = MockTransport(lambda _request: json_response({}))
    async with clocked_client(transport, clock, retry=policy) as amo:
        await amo.request("GET", "/api/v4/leads/pipelines")
        await amo.request("GET", "/api/v4/leads/pipelines")
    assert policy.sends == 2 and len(transport.requests) == 2


async def test_every_request_is_counted_by_the_limiter_on_the_fast_path() -> None:
    """Two places per second: the third request of a burst waits for the window."""
    clock = FakeClock()
    limits = RateLimiter(
        clock=clock,
        integration_limit=Limit(2, 1.0),
        account_limit=None,
        store=InMemoryWindowStore(),
    )
    sent: list[float] = []

    def answer(_request: Request) -> Response:
        sent.append(clock.now())
        return json_response({})

    async with clocked_client(MockTransport(answer), clock, limiter=limits) as amo:
        calls = [amo.request("GET", "/api/v4/leads/pipelines") for _ in range(3)]
        await drive(clock, asyncio.gather(*calls))
    assert sent == [0.0, 0.0, 1.0]


# --- presigned headers ----------------------------------------------------------------


def _policy() -> AuthPolicy:
    return AuthPolicy(LongLivedToken(TOKEN), URL("https://example.amocrm.ru"))


async def test_a_presigned_request_for_the_origin_goes_on_as_it_is() -> None:
    policy = _policy()
    headers = policy.presign(sealed_headers({"accept": "application/json"}))
    assert headers["authorization"] == f"Bearer {TOKEN}"
    seen: list[Request] = []

    async def next_(request: Request) -> Response:
        seen.append(request)
        return Response(status=200)

    request = new_request("GET", URL("https://example.amocrm.ru/api/v4/x"), headers)
    await policy.wrap(next_)(request)
    assert seen == [request] and seen[0] is request


async def test_presigned_headers_never_carry_the_token_to_another_origin() -> None:
    policy = _policy()
    headers = policy.presign(sealed_headers({"accept": "application/json"}))
    seen: list[Request] = []

    async def next_(request: Request) -> Response:
        seen.append(request)
        return Response(status=200)

    for url in ("https://evil.example.com/x", "http://example.amocrm.ru/x"):
        await policy.wrap(next_)(new_request("GET", URL(url), headers))
    assert [r.headers.get("authorization") for r in seen] == [None, None]
    assert all(r.headers.get("accept") == "application/json" for r in seen)


# --- the transport's value constructors ----------------------------------------------------

HEADER_NAMES = st.sampled_from(["Accept", "content-type", "X-Thing", "authorization"])
HEADERS = st.dictionaries(HEADER_NAMES, st.text(max_size=8), max_size=4)


@settings(max_examples=80, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    path=st.text(alphabet="abc/09", max_size=12),
    headers=HEADERS,
    sealed=st.booleans(),
    body=st.none() | st.binary(max_size=16),
    idempotent=st.none() | st.booleans(),
)
def test_new_request_is_the_request_the_class_makes(
    method: str,
    path: str,
    headers: dict[str, str],
    sealed: bool,
    body: bytes | None,
    idempotent: bool | None,
) -> None:
    url = URL("https://example.amocrm.ru/api").with_path("/" + path.strip("/"))
    given_headers = sealed_headers(headers) if sealed else dict(headers)
    made = new_request(method, url, given_headers, body, idempotent)
    expected = Request(
        method=method, url=url, headers=given_headers, body=body, idempotent=idempotent
    )
    assert made == expected and repr(made) == repr(expected)
    assert dict(made.headers) == dict(expected.headers)
    assert all(name == name.lower() or sealed for name in made.headers)


@settings(max_examples=60, deadline=None)
@given(status=st.integers(100, 599), headers=HEADERS, body=st.binary(max_size=16))
def test_new_response_is_the_response_the_class_makes(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    for given_headers in (CIMultiDictProxy(CIMultiDict(headers)), dict(headers)):
        made = new_response(status, given_headers, body)
        expected = Response(status=status, headers=given_headers, body=body)
        assert made == expected and repr(made) == repr(expected)
        assert made.content_type == expected.content_type


# --- the loop check without get_running_loop ---------------------------------------------


def test_a_client_whose_loop_runs_in_another_thread_refuses_this_one() -> None:
    """The cheap check (its loop runs in this thread) must not pass a call made from
    another thread's loop while the client's own loop is running."""
    started, release = threading.Event(), threading.Event()
    transport = MockTransport(lambda _request: json_response({}))
    amo = AmoClient(subdomain="example", access_token=TOKEN, transport=transport)

    async def own_loop() -> None:
        await amo.request("GET", "/api/v4/leads/pipelines")  # binds the client here
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)

    runner = threading.Thread(target=asyncio.run, args=(own_loop(),))
    runner.start()
    try:
        assert started.wait(5)
        with pytest.raises(WrongEventLoopError):
            asyncio.run(amo.request("GET", "/api/v4/leads/pipelines"))
    finally:
        release.set()
        runner.join(5)
    assert len(transport.requests) == 1
