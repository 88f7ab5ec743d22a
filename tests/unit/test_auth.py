"""Auth providers and token stores: OAuth2's single flight, rotation order, revocation and
reload, margins on a fake clock, FileTokenStore's atomic replace, mode and lock.

The server here is :class:`FakeAmo`, a MockTransport handler playing the token endpoint and
one API endpoint, recording every event in order; the emulator versions of the same
behaviour are in ``test_oauth_emulator.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import spec_examples as P
from support.constants import PIPELINES
from yarl import URL

from amo_pipelines import (
    AmoClient,
    AuthorizationRequiredError,
    AuthProvider,
    BadRequestError,
    ClientClosedError,
    FakeClock,
    FileTokenStore,
    InvalidInputError,
    LongLivedToken,
    MemoryTokenStore,
    OAuth2,
    RateLimiter,
    Request,
    RequestNotSentError,
    Response,
    ResponseLostError,
    RetryPolicy,
    ServerError,
    TokenRevokedError,
    TokenSet,
    TokenStore,
    TokenStoreError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from amo_pipelines.auth import tokens as tokens_module
from amo_pipelines.http.chain import AuthPolicy
from amo_pipelines.testing import MockTransport, json_response, problem_response

NOW = 1_700_000_000.0
CLIENT_ID = "client-4f1d"
SECRET = "client-SECRET-9c2e"
REDIRECT = "https://integration.example/oauth"
GATE_TIMEOUT = 5.0  # a test that fails while a gate is shut still ends


# --- a fake account: token endpoint + one API endpoint ----------------------------------


class FakeAmo:
    """Issues tokens like amoCRM (single-use refresh tokens; a refresh revokes the access
    token issued with the old one) and serves GET /api/v4/leads/pipelines.

    ``events`` records, in order: ``token-request``, ``issued <access>``, ``api <token>``.
    ``gate``: when set to an unset Event, token requests wait for it. ``token_answers``:
    queued answers (a Response or an exception) the token endpoint gives instead.
    """

    def __init__(self, clock: FakeClock, *, expires_in: float = 86400) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.events: list[str] = []
        self.token_bodies: list[dict[str, Any]] = []
        self.access: set[str] = set()
        self.refresh: dict[str, str | None] = {}  # refresh -> its access token; None = used
        self.codes: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.token_answers: list[Response | BaseException] = []
        self._n = 0
        self.transport = MockTransport(self)

    @property
    def token_calls(self) -> int:
        return len(self.token_bodies)

    def issue(self, *, expires_at: float | None = None) -> TokenSet:
        self._n += 1
        access, refresh = f"acc-SECRET-{self._n}", f"ref-SECRET-{self._n}"
        self.access.add(access)
        self.refresh[refresh] = access
        when = self.clock.now() + self.expires_in if expires_at is None else expires_at
        return TokenSet(access, refresh, when)

    def code(self) -> str:
        self._n += 1
        code = f"code-SECRET-{self._n}"
        self.codes.add(code)
        return code

    def api_tokens(self) -> list[str]:
        return [e.split(" ", 1)[1] for e in self.events if e.startswith("api ")]

    async def __call__(self, request: Request) -> Response:
        if request.url.path == "/oauth2/access_token":
            return await self._token(request)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.events.append(f"api {token}")
        if token not in self.access:
            return problem_response(401, "Token is invalid", title="Unauthorized")
        return json_response(P.pipelines_json())

    async def _token(self, request: Request) -> Response:
        assert request.body is not None
        body = json.loads(request.body)
        self.token_bodies.append(body)
        self.events.append("token-request")
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), GATE_TIMEOUT)
        if self.token_answers:
            answer = self.token_answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        if body.get("client_id") != CLIENT_ID or body.get("client_secret") != SECRET:
            return problem_response(401, "Client authentication failed")
        if body["grant_type"] == "authorization_code":
            if body.get("code") not in self.codes:
                return problem_response(400, "bad code", hint="Authorization code has been revoked")
            self.codes.discard(body["code"])
        else:
            old = body.get("refresh_token")
            if old not in self.refresh or self.refresh[old] is None:
                return problem_response(
                    401, "The refresh token is invalid.", hint="Token has been revoked"
                )
            self.access.discard(self.refresh[old] or "")
            self.refresh[old] = None
        new = self.issue()
        self.events.append(f"issued {new.access_token}")
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "access_token": new.access_token,
                "refresh_token": new.refresh_token,
            },
            content_type="application/json",
        )


@pytest.fixture
def clock() -> FakeClock:
    """unit/conftest.py's clock, started at NOW: token sets carry wall-clock expiry times."""
    return FakeClock(NOW)


@pytest.fixture
def fake(clock: FakeClock) -> FakeAmo:
    return FakeAmo(clock)


def oauth(clock: FakeClock, store: TokenStore | None = None, **kwargs: Any) -> OAuth2:
    kwargs.setdefault("reload_grace", 0)
    return OAuth2(CLIENT_ID, SECRET, REDIRECT, store=store, clock=clock, **kwargs)


def client(fake: FakeAmo, auth: AuthProvider, **kwargs: Any) -> AmoClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=3, backoff=0.001, max_backoff=0.001))
    return AmoClient(
        subdomain="example",
        auth=auth,
        transport=fake.transport,
        rate_limiter=RateLimiter(integration_limit=None, account_limit=None, max_in_flight=None),
        **kwargs,
    )


@pytest.fixture
async def expired(clock: FakeClock, fake: FakeAmo) -> AsyncIterator[tuple[OAuth2, AmoClient]]:
    """A provider whose store holds an expired access token with a valid refresh token."""
    store = MemoryTokenStore(fake.issue(expires_at=NOW - 1))
    auth = oauth(clock, store)
    async with client(fake, auth) as amo:
        yield auth, amo


class RecordingStore(MemoryTokenStore):
    """Records loads and saves into the fake's event list; ``save_gate`` holds saves."""

    def __init__(self, fake: FakeAmo, tokens: TokenSet | None = None) -> None:
        super().__init__(tokens)
        self.fake = fake
        self.loads = 0
        self.save_gate: asyncio.Event | None = None
        self.fail_saves = 0

    async def load(self) -> TokenSet | None:
        self.loads += 1
        return await super().load()

    async def save(self, tokens: TokenSet) -> None:
        self.fake.events.append(f"save-start {tokens.access_token}")
        if self.save_gate is not None:
            await asyncio.wait_for(self.save_gate.wait(), GATE_TIMEOUT)
        await asyncio.sleep(0)
        if self.fail_saves:
            self.fail_saves -= 1
            self.fake.events.append("save-failed")
            raise OSError("disk full")
        await super().save(tokens)
        self.fake.events.append(f"save-done {tokens.access_token}")


# --- LongLivedToken, construction, TokenSet ----------------------------------------------


async def test_long_lived_token() -> None:
    provider = LongLivedToken("tok-SECRET-long")
    assert await provider.token() == "tok-SECRET-long"
    sent = Request(method="GET", url=URL("/"))
    assert not await provider.on_unauthorized(sent, Response(status=401))
    assert "tok-SECRET-long" not in repr(provider)
    assert isinstance(provider, AuthProvider)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"client_id": ""}, "client_id"),
        ({"client_secret": "  "}, "client_secret"),
        ({"client_secret": "bad SECRET\r\nx"}, "client_secret"),
        ({"client_secret": None}, "client_secret"),
        ({"redirect_uri": "not a url"}, "redirect_uri"),
        ({"redirect_uri": "/relative"}, "redirect_uri"),
        ({"redirect_uri": "ftp://x.example/cb"}, "redirect_uri"),
        ({"redirect_uri": "https://x.example/cb#frag"}, "redirect_uri"),
        ({"refresh_margin": -1}, "refresh_margin"),
        ({"refresh_margin": float("nan")}, "refresh_margin"),
        ({"reload_grace": True}, "reload_grace"),
    ],
)
def test_oauth2_arguments_are_checked(kwargs: dict[str, Any], field: str) -> None:
    args = {"client_id": CLIENT_ID, "client_secret": SECRET, "redirect_uri": REDIRECT, **kwargs}
    with pytest.raises(InvalidInputError) as info:
        OAuth2(**args)
    assert info.value.field == field
    assert "SECRET" not in str(info.value)


def test_auth_must_be_a_provider() -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(subdomain="example", auth="tok-SECRET-as-string")  # type: ignore[arg-type]
    assert info.value.field == "auth"
    assert "SECRET" not in str(info.value)


def test_token_set_repr_and_round_trip() -> None:
    tokens = TokenSet("acc-SECRET-x", "ref-SECRET-y", NOW)
    for text in (repr(tokens), str(tokens), repr(MemoryTokenStore(tokens))):
        assert "SECRET" not in text
        assert tokens_module.fingerprint("acc-SECRET-x") in text
    assert TokenSet.from_dict(tokens.to_dict()) == tokens
    assert TokenSet.from_dict(json.loads(json.dumps(tokens.to_dict()))) == tokens


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"token_type": "Basic"}, "token_type"),
        ({"token_type": None}, "token_type"),
        ({"expires_in": 0}, "expires_in"),
        ({"expires_in": "86400"}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"access_token": ""}, "access_token"),
        ({"access_token": 5}, "access_token"),
        ({"refresh_token": None}, "refresh_token"),
        ({"refresh_token": "a b"}, "refresh_token"),
    ],
)
def test_token_response_is_checked(data: dict[str, Any], field: str) -> None:
    good = {"token_type": "bearer", "expires_in": 60, "access_token": "a", "refresh_token": "r"}
    assert TokenSet.from_response(good, now=10).expires_at == 70
    with pytest.raises(InvalidInputError) as info:
        TokenSet.from_response({**good, **data}, now=10)
    assert info.value.field == field


# --- loading, margins --------------------------------------------------------------------


async def test_fresh_stored_tokens_are_used_without_a_refresh(
    clock: FakeClock, fake: FakeAmo
) -> None:
    stored = fake.issue()
    store = RecordingStore(fake, stored)
    auth = oauth(clock, store)
    async with client(fake, auth) as amo:
        await asyncio.gather(*(amo.pipelines.list() for _ in range(20)))
    assert fake.token_calls == 0
    assert store.loads == 1  # one load shared by the 20 first callers
    assert fake.api_tokens() == [stored.access_token] * 20
    assert auth.tokens == stored


async def test_empty_store_requires_authorization(clock: FakeClock, fake: FakeAmo) -> None:
    auth = oauth(clock)
    async with client(fake, auth) as amo:
        with pytest.raises(AuthorizationRequiredError) as info:
            await amo.pipelines.list()
    assert not isinstance(info.value, TokenRevokedError)
    assert "exchange_code" in str(info.value)
    assert fake.events == []


async def test_refresh_ahead_of_expiry_respects_the_margin(clock: FakeClock, fake: FakeAmo) -> None:
    first = fake.issue(expires_at=NOW + 1000)
    auth = oauth(clock, MemoryTokenStore(first), refresh_margin=300)
    async with client(fake, auth) as amo:
        await clock.advance(699)  # 301 s left: outside the margin
        await amo.pipelines.list()
        assert fake.token_calls == 0
        await clock.advance(2)  # 299 s left: inside it
        await amo.pipelines.list()
    assert fake.token_calls == 1
    assert fake.token_bodies[0]["refresh_token"] == first.refresh_token
    tokens = fake.api_tokens()
    assert tokens[0] == first.access_token
    assert tokens[1] != first.access_token
    assert auth.tokens is not None and auth.tokens.expires_at == NOW + 701 + 86400


async def test_short_lived_tokens_cap_the_margin(clock: FakeClock, fake: FakeAmo) -> None:
    fake.expires_in = 100  # shorter than the 300 s margin
    auth = oauth(clock, MemoryTokenStore(fake.issue(expires_at=NOW - 1)))
    async with client(fake, auth) as amo:
        await amo.pipelines.list()
        assert fake.token_calls == 1
        await clock.advance(49)  # the margin is half the lifetime: 50 s
        await amo.pipelines.list()
        assert fake.token_calls == 1  # no refresh storm
        await clock.advance(2)
        await amo.pipelines.list()
        assert fake.token_calls == 2


# --- single flight -----------------------------------------------------------------------


async def test_concurrent_callers_share_one_refresh(
    expired: tuple[OAuth2, AmoClient], fake: FakeAmo
) -> None:
    auth, amo = expired
    fake.gate = asyncio.Event()
    calls = [asyncio.ensure_future(amo.pipelines.list()) for _ in range(100)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert fake.token_calls == 1  # everyone else is waiting for it
    fake.gate.set()
    results = await asyncio.gather(*calls)
    assert len(results) == 100
    assert fake.token_calls == 1
    assert auth.tokens is not None
    assert fake.api_tokens() == [auth.tokens.access_token] * 100


async def test_401s_share_one_refresh_and_each_request_is_resent_once(
    clock: FakeClock, fake: FakeAmo
) -> None:
    stale = fake.issue()
    fake.access.discard(stale.access_token)  # the server no longer takes it; we do not know
    auth = oauth(clock, MemoryTokenStore(stale))
    async with client(fake, auth) as amo:
        await asyncio.gather(*(amo.pipelines.list() for _ in range(30)))
    assert fake.token_calls == 1
    assert auth.tokens is not None
    tokens = fake.api_tokens()
    assert tokens.count(stale.access_token) == 30
    assert tokens.count(auth.tokens.access_token) == 30


async def test_a_401_after_someone_else_refreshed_just_resends(
    clock: FakeClock, fake: FakeAmo
) -> None:
    auth = oauth(clock, MemoryTokenStore(fake.issue()))
    async with client(fake, auth) as amo:
        await amo.pipelines.list()
        old = auth.tokens
        assert old is not None
        await auth.refresh()
        assert fake.token_calls == 1
        sent = Request(
            method="GET",
            url=URL("https://example.amocrm.ru/x"),
            headers={"authorization": f"Bearer {old.access_token}"},
        )
        assert await auth.on_unauthorized(sent, Response(status=401))
    assert fake.token_calls == 1


async def test_a_second_401_is_not_refreshed_again(clock: FakeClock, fake: FakeAmo) -> None:
    auth = oauth(clock, MemoryTokenStore(fake.issue()))
    fake.access.clear()
    fake.token_answers.append(
        json_response(
            {"token_type": "Bearer", "expires_in": 100, "access_token": "a2", "refresh_token": "r2"}
        )
    )
    async with client(fake, auth) as amo:
        with pytest.raises(UnauthorizedError) as info:
            await amo.pipelines.list()
    assert not isinstance(info.value, TokenRevokedError)
    assert fake.token_calls == 1
    assert len(fake.api_tokens()) == 2  # sent, refreshed, resent once, given up


async def test_a_cancelled_caller_does_not_cancel_the_shared_refresh(
    expired: tuple[OAuth2, AmoClient], fake: FakeAmo
) -> None:
    auth, amo = expired
    fake.gate = asyncio.Event()
    first = asyncio.ensure_future(amo.pipelines.list())  # starts the refresh
    for _ in range(10):
        await asyncio.sleep(0)
    others = [asyncio.ensure_future(amo.pipelines.list()) for _ in range(5)]
    for _ in range(10):
        await asyncio.sleep(0)
    first.cancel()
    others[0].cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    fake.gate.set()
    results = await asyncio.gather(*others[1:])
    assert len(results) == 4
    assert first.cancelled() and others[0].cancelled()
    assert fake.token_calls == 1
    assert auth.store is not None
    stored = await auth.store.load()
    assert stored == auth.tokens
    assert stored is not None and f"issued {stored.access_token}" in fake.events


@pytest.mark.parametrize(
    "failure",
    [
        ResponseLostError("connection lost", method="POST", path="/oauth2/access_token"),
        problem_response(500, "boom"),
    ],
    ids=["lost", "500"],
)
async def test_a_failed_refresh_fails_its_waiters_and_leaves_nothing_wedged(
    clock: FakeClock, fake: FakeAmo, failure: Any
) -> None:
    auth = oauth(clock, MemoryTokenStore(fake.issue(expires_at=NOW - 1)))
    fake.token_answers.append(failure)
    async with client(fake, auth, retry=RetryPolicy(max_attempts=1)) as amo:
        outcomes = await asyncio.gather(
            *(amo.request("POST", PIPELINES, json=[{"name": "x"}]) for _ in range(10)),
            return_exceptions=True,
        )
        for outcome in outcomes:
            # The create was never sent: not "maybe processed", whatever the refresh did.
            assert isinstance(outcome, RequestNotSentError), outcome
            assert not outcome.may_have_been_processed
            assert (outcome.method, outcome.path) == ("POST", PIPELINES)
            assert isinstance(outcome.__cause__, (ResponseLostError, ServerError))
        assert fake.token_calls == 1  # a maybe-processed refresh is never resent blindly
        assert fake.api_tokens() == []
        # The next caller starts a new refresh, which works.
        await amo.pipelines.list()
    assert fake.token_calls == 2
    assert auth.tokens is not None and fake.api_tokens() == [auth.tokens.access_token]


async def test_the_request_retry_policy_tries_a_failed_refresh_again(
    expired: tuple[OAuth2, AmoClient], fake: FakeAmo
) -> None:
    _, amo = expired
    fake.token_answers.append(problem_response(503, "busy"))
    results = await asyncio.gather(*(amo.pipelines.list() for _ in range(10)))
    assert len(results) == 10
    assert fake.token_calls == 2  # one failed flight, one good one, for all ten


async def test_a_refresh_that_was_not_sent_is_retried(
    expired: tuple[OAuth2, AmoClient], fake: FakeAmo
) -> None:
    auth, _ = expired
    fake.token_answers.append(
        RequestNotSentError("cannot connect", method="POST", path="/oauth2/access_token")
    )
    await auth.refresh()  # by the token endpoint itself, not a request's retry policy
    assert fake.token_calls == 2
    assert fake.token_bodies[0] == fake.token_bodies[1]


# --- rotation order and saving ------------------------------------------------------------


async def test_new_tokens_are_saved_before_any_request_uses_them(
    clock: FakeClock, fake: FakeAmo
) -> None:
    store = RecordingStore(fake, fake.issue(expires_at=NOW - 1))
    store.save_gate = asyncio.Event()
    auth = oauth(clock, store)
    async with client(fake, auth) as amo:
        calls = [asyncio.ensure_future(amo.pipelines.list()) for _ in range(10)]
        for _ in range(30):
            await asyncio.sleep(0)
        assert fake.events[-1].startswith("save-start")
        # Callers arriving during the save wait too, whatever they find in memory.
        calls += [asyncio.ensure_future(amo.pipelines.list()) for _ in range(5)]
        calls.append(asyncio.ensure_future(auth.token()))
        for _ in range(30):
            await asyncio.sleep(0)
        assert fake.api_tokens() == []  # the slow save holds everyone
        assert not calls[-1].done()
        store.save_gate.set()
        await asyncio.gather(*calls)
    assert auth.tokens is not None
    new = auth.tokens.access_token
    assert fake.events[:4] == [
        "token-request",
        f"issued {new}",
        f"save-start {new}",
        f"save-done {new}",
    ]
    assert fake.events[4:] == [f"api {new}"] * 15


async def test_a_failed_save_keeps_the_new_tokens_and_saves_them_next_time(
    clock: FakeClock, fake: FakeAmo
) -> None:
    store = RecordingStore(fake, fake.issue(expires_at=NOW - 1))
    store.fail_saves = 1
    auth = oauth(clock, store)
    async with client(fake, auth) as amo:
        with pytest.raises(OSError, match="disk full"):
            await amo.pipelines.list()
        assert fake.api_tokens() == []  # the unsaved access token was not used
        await amo.pipelines.list()
    assert fake.token_calls == 1  # the refresh was not repeated: its answer was kept
    assert store.tokens is not None and store.tokens == auth.tokens
    assert fake.api_tokens() == [store.tokens.access_token]


# --- revocation and reload ----------------------------------------------------------------


async def test_a_revoked_refresh_token_raises_token_revoked(
    clock: FakeClock, fake: FakeAmo, caplog: pytest.LogCaptureFixture
) -> None:
    spent = fake.issue(expires_at=NOW - 1)
    fake.refresh[spent.refresh_token] = None  # used already
    auth = oauth(clock, MemoryTokenStore(spent))
    async with client(fake, auth) as amo:
        with pytest.raises(TokenRevokedError) as info:
            await amo.pipelines.list()
        error = info.value
        assert isinstance(error, UnauthorizedError)
        assert isinstance(error, AuthorizationRequiredError)
        assert error.status == 401 and error.hint == "Token has been revoked"
        assert "re-authorize" in str(error) and "exchange_code" in str(error)
        assert "SECRET" not in str(error) + repr(error.args) + repr(error.body)
        # The same refresh token is not presented again.
        with pytest.raises(TokenRevokedError):
            await amo.pipelines.list()
    assert fake.token_calls == 1
    assert "re-authorization needed" in caplog.text


async def test_revoked_then_the_store_has_newer_tokens_from_another_process(
    clock: FakeClock, fake: FakeAmo
) -> None:
    spent = fake.issue(expires_at=NOW - 1)
    fake.refresh[spent.refresh_token] = None
    theirs = fake.issue()  # what the other process saved after rotating
    store = RecordingStore(fake, spent)

    async def load_then_other_process_saves() -> TokenSet | None:
        store.loads += 1
        current, store.tokens = store.tokens, theirs
        return current

    store.load = load_then_other_process_saves  # type: ignore[method-assign]
    auth = oauth(clock, store)
    async with client(fake, auth) as amo:
        await amo.pipelines.list()
    assert fake.token_calls == 1  # ours, refused; theirs was fresh: no second refresh
    assert fake.api_tokens() == [theirs.access_token]
    assert auth.tokens == theirs


async def test_revoked_then_reloaded_tokens_are_refreshed_when_expired(
    clock: FakeClock, fake: FakeAmo
) -> None:
    spent = fake.issue(expires_at=NOW - 1)
    fake.refresh[spent.refresh_token] = None
    theirs = fake.issue(expires_at=NOW - 1)
    loads = iter([spent, theirs])
    store = MemoryTokenStore(spent)
    store.load = lambda: asyncio.sleep(0, next(loads))  # type: ignore[method-assign]
    auth = oauth(clock, store)
    async with client(fake, auth) as amo:
        await amo.pipelines.list()
    assert [b["refresh_token"] for b in fake.token_bodies] == [
        spent.refresh_token,
        theirs.refresh_token,
    ]
    assert auth.tokens is not None and store.tokens == auth.tokens


async def test_reload_grace_waits_for_a_save_in_progress(clock: FakeClock, fake: FakeAmo) -> None:
    spent = fake.issue(expires_at=NOW - 1)
    fake.refresh[spent.refresh_token] = None
    store = MemoryTokenStore(spent)
    auth = oauth(clock, store, reload_grace=2.0)
    async with client(fake, auth) as amo:
        call = asyncio.ensure_future(amo.pipelines.list())
        await clock.advance(1.0)
        assert not call.done()  # refused, reloaded once, waiting for the grace period
        theirs = fake.issue()
        store.tokens = theirs  # the other process's save lands
        await clock.advance(1.0)
        await call
    assert fake.api_tokens() == [theirs.access_token]
    assert fake.token_calls == 1


async def test_a_401_without_a_hint_is_not_revocation(clock: FakeClock, fake: FakeAmo) -> None:
    auth = OAuth2(CLIENT_ID, "wrong-secret", REDIRECT, clock=clock, reload_grace=0)
    await auth.store.save(fake.issue(expires_at=NOW - 1))
    async with client(fake, auth) as amo:
        with pytest.raises(UnauthorizedError) as info:
            await amo.pipelines.list()
    assert not isinstance(info.value, TokenRevokedError)
    assert "Client authentication failed" in str(info.value)
    assert info.value.path == "/oauth2/access_token"


async def test_an_unusable_token_response_keeps_no_body(clock: FakeClock, fake: FakeAmo) -> None:
    auth = oauth(clock, MemoryTokenStore(fake.issue(expires_at=NOW - 1)))
    fake.token_answers.append(
        json_response(
            {"token_type": "Bearer", "access_token": "acc-SECRET-z", "refresh_token": "r"}
        )
    )
    async with client(fake, auth, retry=RetryPolicy(max_attempts=1)) as amo:
        with pytest.raises(RequestNotSentError) as info:
            await amo.pipelines.list()
    cause = info.value.__cause__
    assert isinstance(cause, UnexpectedResponseError)
    assert cause.body == b""
    assert "expires_in" in str(cause)
    assert "SECRET" not in str(cause) + str(info.value)


async def test_secrets_echoed_in_an_error_body_are_scrubbed(
    expired: tuple[OAuth2, AmoClient], fake: FakeAmo
) -> None:
    auth, amo = expired
    stored = await auth.store.load()
    assert stored is not None
    echo = f"bad request from {SECRET} with {stored.refresh_token}"
    fake.token_answers.append(problem_response(400, echo, hint=stored.refresh_token))
    with pytest.raises(BadRequestError) as info:
        await amo.pipelines.list()
    shown = str(info.value) + repr(info.value.body) + info.value.detail
    assert SECRET not in shown and stored.refresh_token not in shown
    assert "<redacted>" in info.value.detail


# --- the code grant -----------------------------------------------------------------------


async def test_exchange_code_sends_the_documented_fields_and_saves(
    clock: FakeClock, fake: FakeAmo
) -> None:
    store = RecordingStore(fake)
    auth = oauth(clock, store)
    code = fake.code()
    async with client(fake, auth) as amo:
        tokens = await auth.exchange_code(code)
        await amo.pipelines.list()
    assert fake.token_bodies == [
        {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
        }
    ]
    request = fake.transport.requests[0]
    assert str(request.url) == "https://example.amocrm.ru/oauth2/access_token"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert store.tokens == tokens == auth.tokens
    assert fake.events[2:] == [
        f"save-start {tokens.access_token}",
        f"save-done {tokens.access_token}",
        f"api {tokens.access_token}",
    ]


async def test_a_spent_code_is_a_bad_request_with_the_hint(clock: FakeClock, fake: FakeAmo) -> None:
    auth = oauth(clock)
    async with client(fake, auth):
        with pytest.raises(BadRequestError) as info:
            await auth.exchange_code("code-SECRET-never-issued")
    assert "Authorization code has been revoked" in str(info.value)
    assert "code-SECRET" not in str(info.value)
    assert auth.tokens is None


async def test_exchange_code_needs_an_open_client(clock: FakeClock, fake: FakeAmo) -> None:
    auth = oauth(clock)
    with pytest.raises(ClientClosedError):
        await auth.exchange_code(fake.code())
    async with client(fake, auth):
        pass
    with pytest.raises(ClientClosedError):
        await auth.exchange_code(fake.code())
    assert fake.token_calls == 0


async def test_one_provider_serves_one_account(clock: FakeClock, fake: FakeAmo) -> None:
    auth = oauth(clock)
    async with client(fake, auth), client(fake, auth):  # the same account twice: fine
        with pytest.raises(InvalidInputError) as info:
            AmoClient(subdomain="other", auth=auth, transport=fake.transport)
    assert info.value.field == "auth"


async def test_closing_the_client_waits_for_the_refresh_in_flight(
    clock: FakeClock, fake: FakeAmo
) -> None:
    store = MemoryTokenStore(fake.issue(expires_at=NOW - 1))
    auth = oauth(clock, store)
    amo = client(fake, auth)
    fake.gate = asyncio.Event()
    call = asyncio.ensure_future(amo.pipelines.list())
    for _ in range(10):
        await asyncio.sleep(0)
    call.cancel()
    closing = asyncio.ensure_future(amo.aclose())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not closing.done()
    fake.gate.set()
    await closing
    assert amo.closed
    assert store.saves == 1 and store.tokens == auth.tokens
    assert store.tokens is not None and f"issued {store.tokens.access_token}" in fake.events


def test_fingerprint_is_stable_and_not_secret(clock: FakeClock) -> None:
    auth = oauth(clock)
    assert auth.fingerprint == oauth(clock).fingerprint
    assert SECRET not in repr(auth) and SECRET not in auth.fingerprint
    assert auth.fingerprint != OAuth2("other", SECRET, REDIRECT).fingerprint


# --- AuthPolicy and the request log -------------------------------------------------------


async def test_auth_policy_sends_the_token_to_the_account_origin_only() -> None:
    provider = LongLivedToken("tok-SECRET-policy")
    policy = AuthPolicy(provider, URL("https://example.amocrm.ru"))
    seen: list[Request] = []

    async def record(request: Request) -> Response:
        seen.append(request)
        return Response(status=200)

    for url in (
        "https://example.amocrm.ru/api",
        "https://evil.example/api",
        "http://example.amocrm.ru/api",
        "https://example.amocrm.ru:8443/api",
        "https://example.amocrm.ru.evil.example/api",
    ):
        smuggled = {"authorization": "Bearer tok-SECRET-policy"}
        await policy.send(Request(method="GET", url=URL(url), headers=smuggled), record)
    assert [r.headers.get("authorization") for r in seen] == [
        "Bearer tok-SECRET-policy",
        None,
        None,
        None,
        None,
    ]


async def test_debug_log_names_the_attempt(
    caplog: pytest.LogCaptureFixture, clock: FakeClock, fake: FakeAmo
) -> None:
    caplog.set_level(logging.DEBUG, logger="amo_pipelines")
    stored = fake.issue()
    fake.transport.add(problem_response(503, "busy"))
    async with client(fake, oauth(clock, MemoryTokenStore(stored))) as amo:
        await amo.pipelines.list()
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith(f"GET {PIPELINES} -> 503 in ") and m.endswith("(attempt 1)") for m in messages
    )
    assert any(
        m.startswith(f"GET {PIPELINES} -> 200 in ") and m.endswith("(attempt 2)") for m in messages
    )


async def test_token_endpoint_bodies_are_never_logged(
    caplog: pytest.LogCaptureFixture, expired: tuple[OAuth2, AmoClient], fake: FakeAmo
) -> None:
    caplog.set_level(logging.DEBUG, logger="amo_pipelines")
    _, amo = expired
    await amo.pipelines.list()
    assert "POST /oauth2/access_token -> 200" in caplog.text
    assert "SECRET" not in caplog.text


async def test_log_bodies_never_shows_a_token_exchange_sent_by_hand(
    caplog: pytest.LogCaptureFixture, clock: FakeClock, fake: FakeAmo
) -> None:
    caplog.set_level(logging.DEBUG, logger="amo_pipelines")
    code = fake.code()
    auth = oauth(clock, MemoryTokenStore(fake.issue()))
    async with client(fake, auth, log_bodies=True) as amo:
        body = {"client_id": CLIENT_ID, "client_secret": SECRET, "grant_type": "authorization_code"}
        await amo.request("POST", "/oauth2/access_token", json={**body, "code": code})
        await amo.pipelines.list()
    assert "POST /oauth2/access_token -> 200" in caplog.text
    assert "response body" in caplog.text  # the API call's bodies are there
    assert "SECRET" not in caplog.text


async def test_log_bodies_still_skips_the_token_endpoint(
    caplog: pytest.LogCaptureFixture, clock: FakeClock, fake: FakeAmo
) -> None:
    caplog.set_level(logging.DEBUG, logger="amo_pipelines")
    auth = oauth(clock, MemoryTokenStore(fake.issue(expires_at=NOW - 1)))
    async with client(fake, auth, log_bodies=True) as amo:
        await amo.pipelines.list()
    assert "response body" in caplog.text  # the API call's bodies are there
    assert "SECRET" not in caplog.text


# --- stores -------------------------------------------------------------------------------


async def test_memory_store() -> None:
    store = MemoryTokenStore()
    assert await store.load() is None
    tokens = TokenSet("a", "r", NOW)
    await store.save(tokens)
    assert await store.load() == tokens and store.saves == 1
    assert isinstance(store, TokenStore)


async def test_file_store_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    assert await store.load() is None
    tokens = TokenSet("acc-SECRET-f", "ref-SECRET-f", NOW)
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        await store.save(tokens)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await FileTokenStore(path).load() == tokens
    assert json.loads(path.read_text()) == tokens.to_dict()
    assert "SECRET" not in repr(store)
    assert isinstance(store, TokenStore)


async def test_file_store_replaces_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    path.chmod(0o644)  # a file someone made readable: the replacement is private again
    store = FileTokenStore(path)
    first = TokenSet("a1", "r1", NOW)
    inode = path.stat().st_ino
    await store.save(first)
    assert path.stat().st_ino != inode  # a new file took the old one's place
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def crash(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tokens_module.os, "replace", crash)
    with pytest.raises(TokenStoreError, match="No space left"):
        await store.save(TokenSet("a2", "r2", NOW))
    assert await store.load() == first  # the old file is whole
    assert os.listdir(tmp_path) == ["tokens.json"]  # no temp file left behind


async def test_file_store_io_runs_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[str] = []
    real = asyncio.to_thread

    async def spy(func: Any, *args: Any) -> Any:
        used.append(func.__name__)
        return await real(func, *args)

    monkeypatch.setattr(tokens_module.asyncio, "to_thread", spy)
    store = FileTokenStore(tmp_path / "t.json")
    await store.save(TokenSet("a", "r", NOW))
    await store.load()
    assert used == ["_write", "_read"]


@pytest.mark.parametrize(
    "content",
    [b"not json acc-SECRET", b"[1]", b'{"access_token": "acc-SECRET", "refresh_token": 5}'],
)
async def test_file_store_refuses_a_broken_file_without_showing_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    with pytest.raises(TokenStoreError) as info:
        await FileTokenStore(path).load()
    error = info.value
    assert "SECRET" not in str(error) + repr(error.args)
    assert error.__cause__ is None and error.__suppress_context__


@pytest.mark.skipif(tokens_module.fcntl is None, reason="fcntl locks are POSIX only")
async def test_file_store_lock_excludes_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    ours, theirs = FileTokenStore(path, lock_poll=0.001), FileTokenStore(path, lock_poll=0.001)
    order: list[str] = []

    async def hold(store: FileTokenStore, name: str, release: asyncio.Event) -> None:
        async with store.lock():
            order.append(f"{name} in")
            await release.wait()
            order.append(f"{name} out")

    first_release, second_release = asyncio.Event(), asyncio.Event()
    first = asyncio.ensure_future(hold(ours, "a", first_release))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(hold(theirs, "b", second_release))
    await asyncio.sleep(0.02)
    assert order == ["a in"]  # b waits: flock locks separate open files, as across processes
    first_release.set()
    second_release.set()
    await asyncio.gather(first, second)
    assert order == ["a in", "a out", "b in", "b out"]
    assert stat.S_IMODE(ours.lock_path.stat().st_mode) == 0o600


@pytest.mark.skipif(tokens_module.fcntl is None, reason="fcntl locks are POSIX only")
async def test_file_store_lock_times_out_and_cancels_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    holder, waiter = FileTokenStore(path), FileTokenStore(path, lock_timeout=0.05, lock_poll=0.01)
    async with holder.lock():
        with pytest.raises(TokenStoreError, match="waited"):
            async with waiter.lock():
                pass  # pragma: no cover
        pending = asyncio.ensure_future(FileTokenStore(path, lock_poll=0.01).lock().__aenter__())
        await asyncio.sleep(0.02)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
    async with waiter.lock():  # nothing was left holding it
        pass


async def test_oauth2_holds_the_store_lock_around_a_refresh(
    clock: FakeClock, fake: FakeAmo
) -> None:
    events = fake.events

    class LockingStore(MemoryTokenStore):
        def lock(self) -> Any:
            store = self

            class Held:
                async def __aenter__(self) -> None:
                    events.append("lock")

                async def __aexit__(self, *exc: object) -> None:
                    events.append(f"unlock saves={store.saves}")

            return Held()

    auth = oauth(clock, LockingStore(fake.issue(expires_at=NOW - 1)))
    async with client(fake, auth) as amo:
        await amo.pipelines.list()
    assert auth.tokens is not None
    assert events == [
        "lock",
        "token-request",
        f"issued {auth.tokens.access_token}",
        "unlock saves=1",
        f"api {auth.tokens.access_token}",
    ]
