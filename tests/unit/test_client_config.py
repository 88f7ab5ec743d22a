"""ClientConfig: validated once, shared by clients, filled by AmoClient's keyword
arguments; the user's policies, where they sit in the chain and what they see."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amo_pipelines import (
    NO_RETRY,
    AmoClient,
    ClientConfig,
    FakeClock,
    Handler,
    InvalidInputError,
    MemoryTokenStore,
    OAuth2,
    Request,
    Response,
    RetryPolicy,
    TokenSet,
)
from amo_pipelines.testing import MockTransport, json_response, problem_response

TOKEN = "tok-SECRET-config-7d2c"
PATH = "/api/v4/leads/pipelines"
EMPTY = {"_embedded": {}}


class Recorder:
    """A policy that notes what it sees, by name, in a shared log."""

    def __init__(self, name: str, log: list[tuple[str, Any]]) -> None:
        self.name = name
        self.log = log

    async def send(self, request: Request, next: Handler) -> Response:
        self.log.append((self.name, request.headers.get("authorization")))
        try:
            response = await next(request)
        except Exception as e:
            self.log.append((self.name, type(e).__name__))
            raise
        self.log.append((self.name, response.status))
        return response


def client(transport: MockTransport, **kwargs: Any) -> AmoClient:
    kwargs.setdefault("retry", NO_RETRY)
    return AmoClient(subdomain="example", access_token=TOKEN, transport=transport, **kwargs)


async def test_policies_see_each_attempt_signed_and_its_raw_status_in_order() -> None:
    log: list[tuple[str, Any]] = []
    transport = MockTransport(
        responses=[problem_response(503, "busy"), json_response({"_embedded": {}})]
    )
    retry = RetryPolicy(max_attempts=2, backoff=0.0)
    async with client(
        transport, retry=retry, policies=[Recorder("outer", log), Recorder("inner", log)]
    ) as amo:
        await amo.request("GET", PATH)
    bearer = f"Bearer {TOKEN}"
    assert log == [
        ("outer", bearer),
        ("inner", bearer),
        ("inner", 503),  # the 503 is seen as an answer, before it is retried
        ("outer", 503),
        ("outer", bearer),
        ("inner", bearer),
        ("inner", 200),
        ("outer", 200),
    ]


async def test_a_policy_sees_the_transport_failure() -> None:
    from amo_pipelines import RequestNotSentError

    log: list[tuple[str, Any]] = []
    lost = RequestNotSentError("refused", method="GET", path=PATH)
    async with client(MockTransport(responses=[lost]), policies=[Recorder("p", log)]) as amo:
        with pytest.raises(RequestNotSentError):
            await amo.request("GET", PATH)
        assert amo.rate_limiter.stats("example.amocrm.ru").in_flight == 0
    assert log == [("p", f"Bearer {TOKEN}"), ("p", "RequestNotSentError")]


async def test_policies_never_see_the_token_endpoint() -> None:
    log: list[tuple[str, Any]] = []
    clock = FakeClock(start=1_000_000.0)
    stale = TokenSet(
        access_token="acc-old-0001",
        refresh_token="ref-old-0001",
        expires_at=clock.now() - 1,
    )
    auth = OAuth2("client-1", "secret-1", "https://example.org/cb", store=MemoryTokenStore(stale))
    auth.clock = clock

    def answer(request: Request) -> Response:
        if request.url.path == "/oauth2/access_token":
            return json_response(
                {
                    "token_type": "Bearer",
                    "expires_in": 86400,
                    "access_token": "acc-new-0002",
                    "refresh_token": "ref-new-0002",
                }
            )
        return json_response({"_embedded": {}})

    transport = MockTransport(answer)
    async with AmoClient(
        subdomain="example",
        auth=auth,
        transport=transport,
        retry=NO_RETRY,
        policies=[Recorder("p", log)],
    ) as amo:
        await amo.request("GET", PATH)
    assert [r.url.path for r in transport.requests] == ["/oauth2/access_token", PATH]
    assert log == [("p", "Bearer acc-new-0002"), ("p", 200)]


async def test_one_config_serves_many_clients_and_keywords_replace_its_fields() -> None:
    config = ClientConfig(batch_size=20, user_agent="migrator/1.0", retry=NO_RETRY)
    transport = MockTransport(lambda request: json_response(EMPTY))
    async with (
        AmoClient(subdomain="a", access_token=TOKEN, transport=transport, config=config) as a,
        AmoClient(
            subdomain="b", access_token=TOKEN, transport=transport, config=config, batch_size=5
        ) as b,
    ):
        await a.request("GET", PATH)
        await b.request("GET", PATH)
        assert a.config is config and a.batch_size == 20
        assert b.batch_size == 5 and b.config.user_agent == "migrator/1.0"
    assert {r.headers["user-agent"] for r in transport.requests} == {"migrator/1.0"}


async def test_the_default_user_agent_names_the_sdk() -> None:
    transport = MockTransport(lambda request: json_response(EMPTY))
    async with client(transport) as amo:
        await amo.request("GET", PATH)
    assert transport.requests[0].headers["user-agent"].startswith("amo_pipelines/")


def test_a_retry_policy_on_a_fake_clock_puts_the_client_on_it() -> None:
    clock = FakeClock()
    amo = client(MockTransport(), retry=RetryPolicy(clock=clock))
    assert amo.clock is clock and amo.config.clock is clock


def test_two_clocks_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="retry"):
        ClientConfig(clock=FakeClock(), retry=RetryPolicy(clock=FakeClock()))


BAD: dict[str, Any] = {
    "batch_size": 0,
    "on_ambiguous": "guess",
    "reconcile_wait": -1,
    "timeout": 0,
    "max_response_bytes": 0,
    "user_agent": "evil\r\nx-injected: 1",
    "policies": [object()],
    "retry": "twice",
    "log_bodies": "yes",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_field_is_refused_with_its_name(name: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        ClientConfig(**{name: BAD[name]})
    assert name in str(info.value)
    with pytest.raises(InvalidInputError):  # and so through the client's keywords
        client(MockTransport(), **{name: BAD[name]}) if name not in (
            "timeout",
            "max_response_bytes",
        ) else AmoClient(subdomain="example", access_token=TOKEN, **{name: BAD[name]})


def test_evolve_validates_again() -> None:
    config = ClientConfig()
    with pytest.raises(InvalidInputError, match="batch_size"):
        attrs.evolve(config, batch_size=10_000)


@given(st.text(max_size=40))
def test_any_user_agent_is_either_refused_or_sent_as_given(text: str) -> None:
    try:
        config = ClientConfig(user_agent=text)
    except InvalidInputError as e:
        assert e.field == "user_agent"
        assert (
            not text.strip()
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
            or (not text.isascii())
        )
    else:
        assert config.user_agent == text
        assert "\r" not in text and "\n" not in text


async def test_the_demo_counts_requests_with_a_policy() -> None:
    from amo_pipelines.demo import CountingPolicy

    counter = CountingPolicy()
    transport = MockTransport(
        responses=[problem_response(429, "slow", retry_after=0), json_response(EMPTY)]
    )
    async with client(transport, retry=RetryPolicy(max_attempts=2), policies=[counter]) as amo:
        await amo.request("GET", PATH)
    assert counter.statuses == Counter({429: 1, 200: 1}) and counter.requests == 2


async def test_a_policy_sees_the_request_as_the_caller_marked_it() -> None:
    seen: list[Request] = []

    class Look:
        async def send(self, request: Request, next: Handler) -> Response:
            seen.append(request)
            return await next(request)

    transport = MockTransport(lambda request: json_response(EMPTY))
    async with client(transport, policies=[Look()]) as amo:
        await amo.request("PATCH", PATH, json={"name": "x"}, idempotent=False)
    (request,) = seen
    assert request.idempotent is False and request.method == "PATCH"
    assert request.body == b'{"name":"x"}' and request.headers["content-type"] == "application/json"
