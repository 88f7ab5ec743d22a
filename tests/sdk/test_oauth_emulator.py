"""OAuth through the SDK against the emulator over loopback HTTP: single flight, rotation,
revocation, another process's tokens, the code grant, and hostile URLs and ids.

Every assertion about the server side reads the emulator: its request log, its token
endpoint counters and its token tables.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support.constants import MAIN, TOKEN_PATH
from support.emulated import ManualClock, unlimited_config

from amo_pipelines import (
    AmoClient,
    ApiError,
    BadRequestError,
    FileTokenStore,
    InvalidInputError,
    MemoryTokenStore,
    OAuth2,
    PipelineUpdate,
    RateLimiter,
    RetryPolicy,
    StatusUpdate,
    TokenRevokedError,
    TokenSet,
    TokenStore,
    parse_account_host,
)
from amo_pipelines.emulator import Emulator


@pytest.fixture
async def clocked_emu(emu_clock: ManualClock) -> AsyncIterator[Emulator]:
    """``emu`` on ``emu_clock``: tokens expire when the test says so."""
    async with Emulator(unlimited_config(clock=emu_clock)) as emulator:
        yield emulator


def provider(emu: Emulator, store: TokenStore | None = None, **kwargs: Any) -> OAuth2:
    cfg = emu.config
    kwargs.setdefault("reload_grace", 0)
    return OAuth2(
        cfg.oauth_client_id, cfg.oauth_client_secret, cfg.oauth_redirect_uri, store=store, **kwargs
    )


def client(emu: Emulator, auth: OAuth2, **kwargs: Any) -> AmoClient:
    return AmoClient(
        base_url=emu.url,
        auth=auth,
        rate_limiter=RateLimiter(integration_limit=None, account_limit=None, max_in_flight=None),
        retry=RetryPolicy(backoff=0.01, max_backoff=0.05),
        **kwargs,
    )


class CountingFileStore(FileTokenStore):
    loads = 0

    async def load(self) -> TokenSet | None:
        self.loads += 1
        return await super().load()


class CountingMemoryStore(MemoryTokenStore):
    loads = 0

    async def load(self) -> TokenSet | None:
        self.loads += 1
        await asyncio.sleep(0)  # a real store would wait for I/O here
        return await super().load()


def expired_set(emu: Emulator) -> TokenSet:
    """A token pair the emulator issued, stored as if its access token had expired."""
    grant = emu.issue_tokens()
    return TokenSet(grant["access_token"], grant["refresh_token"], 0.0)


def api_entries(emu: Emulator) -> list[Any]:
    return [e for e in emu.request_log if e.path.startswith("/api/")]


def token_entries(emu: Emulator) -> list[Any]:
    return [e for e in emu.request_log if e.path == TOKEN_PATH]


# --- the proof list ------------------------------------------------------------------------


async def test_200_concurrent_requests_with_an_expired_token_refresh_once(
    clocked_emu: Emulator, tmp_path: Path
) -> None:
    old = expired_set(clocked_emu)
    store = CountingFileStore(tmp_path / "tokens.json")
    await store.save(old)
    auth = provider(clocked_emu, store)
    async with client(clocked_emu, auth) as amo:
        results = await asyncio.gather(*(amo.pipelines.get(MAIN) for _ in range(200)))
    assert [p.id for p in results] == [MAIN] * 200
    assert store.loads == 1  # one flight in this process: one load, one refresh, one save
    assert clocked_emu.stats.token_requests == 1
    assert clocked_emu.stats.token_grants == {"refresh_token": 1}
    new = await FileTokenStore(tmp_path / "tokens.json").load()
    assert new is not None and new == auth.tokens
    # On the wire: every API request carried the new token, all answered 200.
    entries = api_entries(clocked_emu)
    assert len(entries) == 200
    assert {e.token for e in entries} == {new.access_token}
    assert {e.status for e in entries} == {200}
    # The rotated refresh token is the live one; the old one is spent.
    assert clocked_emu.oauth.refresh_tokens[old.refresh_token].used
    assert not clocked_emu.oauth.refresh_tokens[new.refresh_token].used
    assert old.access_token not in clocked_emu.state.tokens  # revoked by the refresh
    assert token_entries(clocked_emu)[0].json["refresh_token"] == old.refresh_token


async def test_200_concurrent_401s_refresh_once(
    clocked_emu: Emulator, emu_clock: ManualClock
) -> None:
    grant = clocked_emu.issue_tokens(access_lifetime=60)
    # The SDK believes the token is good for a day; the server expires it after a minute.
    stale = TokenSet(grant["access_token"], grant["refresh_token"], 4e9)
    store = CountingMemoryStore(stale)
    auth = provider(clocked_emu, store)
    async with client(clocked_emu, auth) as amo:
        await amo.pipelines.get(MAIN)
        emu_clock.now += 61
        results = await asyncio.gather(*(amo.pipelines.get(MAIN) for _ in range(200)))
    assert len(results) == 200
    assert store.loads == 2  # the first load, then one flight for all the 401s
    assert clocked_emu.stats.token_grants == {"refresh_token": 1}
    assert auth.tokens is not None
    entries = api_entries(clocked_emu)[1:]
    refused = [e for e in entries if e.status == 401]
    assert refused and {e.token for e in refused} == {stale.access_token}
    assert len(refused) <= 200
    resent = [e for e in entries if e.token == auth.tokens.access_token]
    assert len(resent) == 200 and {e.status for e in resent} == {200}


async def test_a_reused_refresh_token_gives_token_revoked(clocked_emu: Emulator) -> None:
    spent = expired_set(clocked_emu)
    store = MemoryTokenStore(spent)
    async with client(clocked_emu, provider(clocked_emu, store)) as amo:
        await amo.pipelines.list()  # rotates: `spent` is used now
    # A second installation still holding the old set (a restored backup, say).
    auth = provider(clocked_emu, MemoryTokenStore(spent))
    async with client(clocked_emu, auth) as amo:
        with pytest.raises(TokenRevokedError) as info:
            await amo.pipelines.list()
    assert info.value.hint == "Token has been revoked"
    assert "re-authorize" in str(info.value)
    last = token_entries(clocked_emu)[-1]
    assert last.status == 401
    assert last.json["refresh_token"] == spent.refresh_token
    assert len(api_entries(clocked_emu)) == 1  # the refused installation sent no API request


async def test_tokens_rotated_by_another_process_are_picked_up(
    clocked_emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    await FileTokenStore(path).save(expired_set(clocked_emu))
    # Two "processes": separate providers, separate store objects, one file.
    first = provider(clocked_emu, FileTokenStore(path))
    second = provider(clocked_emu, FileTokenStore(path))
    async with client(clocked_emu, first) as one, client(clocked_emu, second) as two:
        await one.pipelines.list()  # refreshes and saves
        await two.pipelines.list()  # finds the new set in the file: no refresh of its own
        assert first.tokens == second.tokens
        await first.refresh()  # the first rotates again; the second holds a revoked token
        await two.pipelines.list()  # 401, then the reload finds the newest set
    assert clocked_emu.stats.token_grants == {"refresh_token": 2}
    assert second.tokens == first.tokens == await FileTokenStore(path).load()
    statuses = [(e.token == second.tokens.access_token, e.status) for e in api_entries(clocked_emu)]
    assert statuses[-1] == (True, 200)


async def test_a_refresh_token_refused_because_another_process_won_the_race(
    clocked_emu: Emulator,
) -> None:
    """We load the set, the other process refreshes it and saves, our refresh is refused:
    the reload finds their set and uses it."""
    mine = expired_set(clocked_emu)
    shared = MemoryTokenStore(mine)
    other = provider(clocked_emu, shared)
    loads = 0

    class RacingStore(MemoryTokenStore):
        async def load(self) -> TokenSet | None:
            nonlocal loads
            loads += 1
            if loads == 1:
                async with client(clocked_emu, other):
                    await other.refresh()  # the other process wins, saves to `shared`
                return mine
            return await shared.load()

        async def save(self, tokens: TokenSet) -> None:
            await shared.save(tokens)

    auth = provider(clocked_emu, RacingStore())
    async with client(clocked_emu, auth) as amo:
        await amo.pipelines.list()
    assert [e.status for e in token_entries(clocked_emu)] == [200, 401]
    assert auth.tokens == other.tokens == shared.tokens
    assert api_entries(clocked_emu)[-1].token == other.tokens.access_token  # type: ignore[union-attr]


async def test_the_code_grant_end_to_end(clocked_emu: Emulator, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    auth = provider(clocked_emu, store)
    code = clocked_emu.issue_code()
    async with client(clocked_emu, auth) as amo:
        tokens = await auth.exchange_code(code)
        pipeline = await amo.pipelines.update(MAIN, PipelineUpdate(name="Продажи"))
        status = await amo.statuses.update(MAIN, 32392159, StatusUpdate(name="Новый"))
        with pytest.raises(BadRequestError) as info:
            await auth.exchange_code(code)  # codes are single-use too
    assert "Authorization code has been revoked" in str(info.value)
    assert pipeline.name == "Продажи" and status.name == "Новый"
    assert await store.load() == tokens == auth.tokens
    first = token_entries(clocked_emu)[0]
    assert first.method == "POST" and first.status == 200
    assert first.json == {
        "client_id": clocked_emu.config.oauth_client_id,
        "client_secret": clocked_emu.config.oauth_client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": clocked_emu.config.oauth_redirect_uri,
    }
    assert first.token is None  # no bearer token on the token endpoint
    assert {e.token for e in api_entries(clocked_emu)} == {tokens.access_token}
    assert clocked_emu.state.tokens[tokens.access_token].admin


async def test_a_refresh_lost_in_transit_is_not_resent_blindly(clocked_emu: Emulator) -> None:
    """The emulator processes the refresh and drops the connection: the refresh token is
    spent and the new one never arrived. The SDK must not loop; the honest outcome is
    TokenRevokedError after one more try through the request's retry policy."""
    from amo_pipelines.emulator import Fault

    clocked_emu.faults.add(Fault.commit_then_drop(), path=TOKEN_PATH)
    auth = provider(clocked_emu, MemoryTokenStore(expired_set(clocked_emu)))
    async with client(clocked_emu, auth) as amo:
        with pytest.raises(TokenRevokedError):
            await amo.pipelines.list()
    assert [e.outcome for e in token_entries(clocked_emu)] == ["fault:commit-then-drop", "401"]
    assert api_entries(clocked_emu) == []


# --- URLs, hosts and ids -----------------------------------------------------------------


@pytest.mark.parametrize("subdomain", ["evil.com/x", "a.b", "x@evil.com", "x:1", "", "a" * 64])
def test_hostile_subdomains_are_refused(clocked_emu: Emulator, subdomain: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(subdomain=subdomain, auth=provider(clocked_emu))
    assert info.value.field == "subdomain"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://example.amocrm.ru",
        "http://evil.com",
        "http://127.0.0.1.evil.com",
        "https://example.amocrm.ru/api",
        "https://user:pw@example.amocrm.ru",
    ],
)
def test_hostile_base_urls_are_refused(clocked_emu: Emulator, base_url: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        AmoClient(base_url=base_url, auth=provider(clocked_emu))
    assert info.value.field == "base_url"


@pytest.mark.parametrize("domain", ["amocrm.ru", "amocrm.com", "kommo.com"])
def test_the_three_domains(clocked_emu: Emulator, domain: str) -> None:
    amo = AmoClient(subdomain="my-shop1", domain=domain, auth=provider(clocked_emu))
    assert str(amo.base_url) == f"https://my-shop1.{domain}"


@pytest.mark.parametrize(
    "value",
    [
        "evil.com/x",
        "a.b",
        "evil.com",
        "example.amocrm.ru.evil.com",
        "evil.com/example.amocrm.ru",
        "http://example.amocrm.ru",
        "https://example.amocrm.ru:8443",
        "https://example.amocrm.ru/api/v4",
        "https://user@example.amocrm.ru",
        "Example.amocrm.ru",
        "a.b.amocrm.ru",
        "example.amocrm.ru\n",
        "",
        None,
    ],
)
def test_parse_account_host_refuses_foreign_hosts(value: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_account_host(value)
    assert info.value.field == "host"


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("example.amocrm.ru", "https://example.amocrm.ru"),
        ("https://shop-1.kommo.com", "https://shop-1.kommo.com"),
        ("https://example.amocrm.com/", "https://example.amocrm.com"),
    ],
)
def test_parse_account_host_accepts_account_hosts(value: str, origin: str) -> None:
    assert str(parse_account_host(value)) == origin


@pytest.mark.parametrize("bad_id", ["1/../2", "1", 0, -5, 1.0, True, None, "3177727?x=1"])
async def test_hostile_ids_never_reach_the_wire(clocked_emu: Emulator, bad_id: Any) -> None:
    auth = provider(clocked_emu, MemoryTokenStore(expired_set(clocked_emu)))
    async with client(clocked_emu, auth) as amo:
        for call in (
            amo.pipelines.get(bad_id),
            amo.pipelines.delete(bad_id),
            amo.statuses.get(MAIN, bad_id),
            amo.statuses.list(bad_id),
        ):
            with pytest.raises(InvalidInputError):
                await call
    assert clocked_emu.request_log == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v4/leads/pipelines/1/../2",
        "/api/v4/leads/pipelines/%2e%2e",
        "//evil.com/x",
        "api/v4/leads/pipelines",
        "/api/v4/leads/pipelines?x=1",
        "/api/v4/leads/pipelines/1\r\nX: y",
        "/oauth2/access_token/../x",
    ],
)
async def test_raw_request_paths_are_checked(clocked_emu: Emulator, path: str) -> None:
    async with client(
        clocked_emu, provider(clocked_emu, MemoryTokenStore(expired_set(clocked_emu)))
    ) as amo:
        with pytest.raises(InvalidInputError) as info:
            await amo.request("GET", path)
    assert info.value.field == "path"
    assert clocked_emu.request_log == []


async def test_a_redirect_to_another_host_is_not_followed(clocked_emu: Emulator) -> None:
    """The account answers 307 towards another origin (here: the emulator): the SDK reports
    it and the token never reaches the other host."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(clocked_emu.url + request.path_qs)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        tokens = expired_set(clocked_emu)
        fresh = TokenSet(tokens.access_token, tokens.refresh_token, 4e9)
        auth = provider(clocked_emu, MemoryTokenStore(fresh))
        async with AmoClient(
            base_url=f"http://127.0.0.1:{server.port}", auth=auth, retry=RetryPolicy(max_attempts=1)
        ) as amo:
            with pytest.raises(ApiError) as info:
                await amo.pipelines.list()
    finally:
        await server.close()
    assert info.value.status == 307
    assert clocked_emu.request_log == []


async def test_the_emulator_token_endpoint_is_reachable_only_through_the_account_origin(
    clocked_emu: Emulator,
) -> None:
    """The provider posts to the client's own origin, never to a configured or redirected
    one: check the request the emulator saw."""
    auth = provider(clocked_emu, MemoryTokenStore(expired_set(clocked_emu)))
    async with client(clocked_emu, auth) as amo:
        await amo.pipelines.list()
    entry = token_entries(clocked_emu)[0]
    assert entry.method == "POST" and entry.query == ""
    # The endpoint itself takes no GET.
    async with (
        aiohttp.ClientSession() as session,
        session.get(clocked_emu.url + TOKEN_PATH) as response,
    ):
        assert response.status == 405
        assert json.loads(await response.read())["status"] == 405
