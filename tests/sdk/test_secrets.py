"""The secret scan: a whole job against the emulator with logging at DEBUG (bodies on) and
errors forced (401, 403, 500, transport failures, validation errors, BatchError, a revoked
refresh token), then every captured log record (message, args and formatted with its
traceback), every exception (str, repr, args, the whole cause/context chain, BatchError's
items) and the repr of every client, provider, store, token set, request and response is
searched for every secret the emulator ever issued and the client secret.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import traceback
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.constants import FIRST, MAIN, PIPELINES, TOKEN_PATH

from amo_pipelines import (
    AccountBlockedError,
    AiohttpTransport,
    AmoClient,
    AmoError,
    BadRequestError,
    BatchError,
    FileTokenStore,
    ForbiddenError,
    InvalidInputError,
    LongLivedToken,
    MemoryTokenStore,
    NewPipeline,
    NewStatus,
    NotFoundError,
    OAuth2,
    PipelineUpdate,
    RateLimiter,
    Request,
    RequestNotSentError,
    Response,
    ResponseLostError,
    RetryPolicy,
    ServerError,
    StatusUpdate,
    TokenRevokedError,
    TokenSet,
    UnauthorizedError,
)
from amo_pipelines.emulator import Emulator, EmulatorConfig, Fault

CLIENT_SECRET = "client-SECRET-3e8a61f0"
LONG_LIVED = "long-lived-SECRET-77d1"


class Recording:
    """The default transport, keeping every request and response for the repr scan."""

    def __init__(self) -> None:
        self.inner = AiohttpTransport(timeout=5)
        self.seen: list[Request | Response] = []

    async def send(self, request: Request) -> Response:
        self.seen.append(request)
        response = await self.inner.send(request)
        self.seen.append(response)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def chain(error: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    pending = [error]
    while pending:
        current = pending.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BatchError):
            pending += list(current.errors.values())


def texts_of_error(error: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(type(error), error, error.__traceback__))]
    for link in chain(error):
        texts += [str(link), repr(link), repr(link.args)]
        texts += [repr(v) for v in vars(link).values()]
    return texts


def texts_of_record(record: logging.LogRecord) -> list[str]:
    texts = [str(record.msg), repr(record.args), record.getMessage(), repr(vars(record))]
    texts.append(logging.Formatter("%(name)s %(levelname)s %(message)s").format(record))
    return texts


def client(emu: Emulator, auth: Any, transport: Recording, **kwargs: Any) -> AmoClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=2, backoff=0.01, max_backoff=0.01))
    return AmoClient(
        base_url=emu.url,
        auth=auth,
        transport=transport,
        log_bodies=True,
        rate_limiter=RateLimiter(integration_limit=None, account_limit=None),
        **kwargs,
    )


async def test_a_whole_job_leaks_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = EmulatorConfig(token_rps=None, account_rps=None, oauth_client_secret=CLIENT_SECRET)
    errors: list[BaseException] = []
    objects: list[object] = []
    transport = Recording()

    async def expect(kind: type[BaseException], work: Awaitable[Any]) -> None:
        try:
            await work
        except kind as e:
            errors.append(e)
        else:  # pragma: no cover - the job is scripted to fail here
            raise AssertionError(f"expected {kind.__name__}")

    async with Emulator(config) as emu, contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(transport.aclose)
        cfg = emu.config
        store = FileTokenStore(tmp_path / "tokens.json")

        def oauth(token_store: Any) -> OAuth2:
            return OAuth2(
                cfg.oauth_client_id,
                CLIENT_SECRET,
                cfg.oauth_redirect_uri,
                store=token_store,
                reload_grace=0,
            )

        auth = oauth(store)
        amo = client(emu, auth, transport)
        objects += [auth, store, amo]
        async with amo:
            # The code grant, then ordinary work.
            objects.append(await auth.exchange_code(emu.issue_code()))
            [created] = await amo.pipelines.create([NewPipeline(name="Секрет?", sort=5)])
            await amo.statuses.create(created.id, [NewStatus(name="Новый", sort=10)])
            await amo.pipelines.update(created.id, PipelineUpdate(name="Renamed"))
            await amo.statuses.list(MAIN, with_descriptions=True)
            objects.append(auth.tokens)

            # 401: the server revokes the access token; the SDK refreshes and goes on.
            assert auth.tokens is not None
            emu.state.revoke_token(auth.tokens.access_token)
            await amo.pipelines.get(MAIN)
            await auth.refresh()

            # 500, and a connection reset with nothing to retry it.
            emu.faults.add(Fault.status(500), path=f"{PIPELINES}/{MAIN}", times=2)
            await expect(ServerError, amo.pipelines.get(MAIN))
            emu.faults.add(Fault.reset(), path=f"{PIPELINES}/{MAIN}", times=2)
            await expect(ResponseLostError, amo.pipelines.get(MAIN))

            # Validation, locally and by the server; a batch with a failing item.
            await expect(InvalidInputError, amo.pipelines.get("1/../2"))  # type: ignore[arg-type]
            await expect(InvalidInputError, amo.request("GET", "//evil.example/x"))
            await expect(BadRequestError, amo.pipelines.delete(MAIN))  # the main pipeline
            await expect(
                BatchError,
                amo.statuses.update_many(
                    MAIN, {FIRST: StatusUpdate(name="ok"), 999999: StatusUpdate(name="x")}
                ),
            )
            await expect(NotFoundError, amo.statuses.delete(MAIN, 999999))

            # A token refresh whose connection is reset before processing (the refresh
            # token still works), then one lost after processing: the refresh token is
            # spent, and the next try is refused as revoked.
            emu.faults.add(Fault.reset(), path=TOKEN_PATH, times=1)
            await expect(ResponseLostError, auth.refresh())
            await auth.refresh()
            emu.faults.add(Fault.commit_then_drop(), path=TOKEN_PATH, times=1)
            await expect(ResponseLostError, auth.refresh())
            await expect(TokenRevokedError, auth.refresh())
            await expect(TokenRevokedError, amo.pipelines.get(MAIN))

        # 403 for a user who is not an administrator (a second installation).
        user_auth = oauth(MemoryTokenStore())
        async with client(emu, user_auth, transport) as user:
            objects.append(await user_auth.exchange_code(emu.issue_code(admin=False)))
            await expect(ForbiddenError, user.pipelines.update(MAIN, PipelineUpdate(name="x")))
            objects += [user_auth, user]

        # A wrong client secret; a long-lived token the account does not know.
        bad = OAuth2(cfg.oauth_client_id, "wrong-SECRET-client", cfg.oauth_redirect_uri)
        await bad.store.save(TokenSet("stale-SECRET-a", "stale-SECRET-r", 0))
        async with client(emu, bad, transport) as wrong:
            await expect(UnauthorizedError, wrong.pipelines.list())
        long_lived = LongLivedToken(LONG_LIVED)
        async with client(emu, long_lived, transport) as unknown:
            await expect(UnauthorizedError, unknown.pipelines.list())
        objects += [bad, long_lived, bad.store]

        # Transport failure: nobody listens on the port.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        closed = OAuth2(cfg.oauth_client_id, CLIENT_SECRET, cfg.oauth_redirect_uri)
        await closed.store.save(TokenSet("gone-SECRET-a", "gone-SECRET-r", 0))
        async with AmoClient(
            base_url=f"http://127.0.0.1:{port}",
            auth=closed,
            retry=RetryPolicy(max_attempts=2, backoff=0.001),
        ) as nowhere:
            await expect(RequestNotSentError, nowhere.pipelines.list())
        objects += [closed, nowhere]

        secrets = {CLIENT_SECRET, LONG_LIVED, "wrong-SECRET-client"}
        secrets |= {"stale-SECRET-a", "stale-SECRET-r", "gone-SECRET-a", "gone-SECRET-r"}
        secrets |= set(emu.state.tokens) | set(emu.oauth.refresh_tokens) | set(emu.oauth.codes)
        issued = {t for t in emu.oauth.refresh_tokens} | {c for c in emu.oauth.codes}

    # The job did what it should have: tokens were issued, rotated and refused.
    assert len(issued) >= 8
    kinds = {type(e) for e in errors}
    assert {ServerError, ResponseLostError, InvalidInputError, BadRequestError, BatchError} <= kinds
    assert {TokenRevokedError, ForbiddenError, UnauthorizedError, RequestNotSentError} <= kinds
    assert not kinds & {AccountBlockedError}
    assert all(isinstance(e, AmoError) for e in errors)
    records = caplog.records
    assert any(r.getMessage().startswith("POST /oauth2/access_token -> 200") for r in records)
    assert any("request body" in r.getMessage() for r in records)  # bodies were on

    texts: list[tuple[str, str]] = []
    for record in records:
        texts += [(f"log {record.name}", t) for t in texts_of_record(record)]
    for error in errors:
        texts += [(f"error {type(error).__name__}", t) for t in texts_of_error(error)]
    for thing in [*objects, *transport.seen]:
        texts += [(f"repr {type(thing).__name__}", repr(thing)), ("str", str(thing))]

    leaks = [(where, s) for where, text in texts for s in secrets if s in text]
    assert leaks == []
    assert len(texts) > 500  # the scan looked at a real job


def test_the_scan_would_see_a_leak() -> None:
    """The scan's own check: a secret in a message arg, a cause's args, a record's extra."""
    secret = "tok-SECRET-leak"
    record = logging.LogRecord("amo_pipelines", logging.DEBUG, __file__, 1, "%s", (secret,), None)
    assert any(secret in t for t in texts_of_record(record))
    try:
        try:
            raise ValueError(secret)
        except ValueError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        assert any(secret in t for t in texts_of_error(outer))
    batch = BatchError([None], {0: AmoError(secret)})
    assert any(secret in t for t in texts_of_error(batch))
