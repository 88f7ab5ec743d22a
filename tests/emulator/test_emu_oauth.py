"""The OAuth token endpoint over raw HTTP: both grants, single use, expiry, client checks,
parameter formats, errors, its pipeline (no rate limit, block, faults) and its counters."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from support.constants import MAIN, PIPELINES, TOKEN_PATH

from amo_pipelines.emulator import Emulator, EmulatorConfig, Fault


class TokenEndpoint:
    """Raw requests to one emulator's token endpoint."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator) -> None:
        self.session = session
        self.emu = emu

    def params(self, **extra: str | None) -> dict[str, Any]:
        cfg = self.emu.config
        params: dict[str, Any] = {
            "client_id": cfg.oauth_client_id,
            "client_secret": cfg.oauth_client_secret,
            "redirect_uri": cfg.oauth_redirect_uri,
            **extra,
        }
        return {k: v for k, v in params.items() if v is not None}

    async def post(self, *, form: bool = False, raw: Any = None, **params: str | None) -> Any:
        body = self.params(**params) if raw is None else raw
        kwargs: dict[str, Any] = {"data": body} if form or raw is not None else {"json": body}
        async with self.session.post(self.emu.url + TOKEN_PATH, **kwargs) as resp:
            return resp.status, resp.content_type, await resp.read()

    async def code(self, code: str, **params: str | None) -> Any:
        return await self.post(grant_type="authorization_code", code=code, **params)

    async def refresh(self, refresh_token: str, **params: str | None) -> Any:
        return await self.post(grant_type="refresh_token", refresh_token=refresh_token, **params)

    async def api(self, token: str, method: str = "GET", **kwargs: Any) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        url = self.emu.url + (PIPELINES if method == "GET" else f"{PIPELINES}/{MAIN}")
        async with self.session.request(method, url, headers=headers, **kwargs) as resp:
            return resp.status


@pytest.fixture
def endpoint(session: aiohttp.ClientSession, emu: Emulator) -> TokenEndpoint:
    return TokenEndpoint(session, emu)


def grant(reply: Any) -> dict[str, Any]:
    status, content_type, body = reply
    assert status == 200, body
    assert content_type == "application/json"
    data = json.loads(body)
    assert set(data) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert data["token_type"] == "Bearer"
    assert isinstance(data["expires_in"], int)
    return data


def refused(reply: Any, status: int, hint: str | None) -> dict[str, Any]:
    got, content_type, body = reply
    assert got == status, body
    assert content_type == "application/problem+json"
    data = json.loads(body)
    assert data["status"] == status and data["type"] == f"https://httpstatus.es/{status}"
    assert data.get("hint") == hint
    return data


# --- the two grants -------------------------------------------------------------------------


async def test_code_grant_issues_working_tokens(emu: Emulator, endpoint: TokenEndpoint) -> None:
    data = grant(await endpoint.code(emu.issue_code()))
    assert data["expires_in"] == 86400
    assert await endpoint.api(data["access_token"]) == 200
    assert await endpoint.api(data["access_token"], "PATCH", json={"name": "x"}) == 200
    assert emu.state.tokens[data["access_token"]].admin


async def test_a_non_admin_grant_reads_but_can_not_write(
    emu: Emulator, endpoint: TokenEndpoint
) -> None:
    data = grant(await endpoint.code(emu.issue_code(admin=False, user_id=7)))
    assert emu.state.tokens[data["access_token"]].user_id == 7
    assert await endpoint.api(data["access_token"]) == 200
    assert await endpoint.api(data["access_token"], "PATCH", json={"name": "x"}) == 403


async def test_form_encoded_parameters_work_too(emu: Emulator, endpoint: TokenEndpoint) -> None:
    grant(await endpoint.post(form=True, grant_type="authorization_code", code=emu.issue_code()))


async def test_refresh_rotates_and_each_refresh_token_works_once(
    emu: Emulator, endpoint: TokenEndpoint
) -> None:
    first = grant(await endpoint.code(emu.issue_code()))
    second = grant(await endpoint.refresh(first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # The refresh revoked the access token issued with the used refresh token.
    assert await endpoint.api(first["access_token"]) == 401
    assert await endpoint.api(second["access_token"]) == 200
    body = refused(await endpoint.refresh(first["refresh_token"]), 401, "Token has been revoked")
    assert body["title"] == "Unauthorized"
    # The reuse did not spoil the live chain.
    third = grant(await endpoint.refresh(second["refresh_token"]))
    assert await endpoint.api(third["access_token"]) == 200


async def test_codes_are_single_use(emu: Emulator, endpoint: TokenEndpoint) -> None:
    code = emu.issue_code()
    grant(await endpoint.code(code))
    refused(await endpoint.code(code), 400, "Authorization code has been revoked")


async def test_lifetimes_on_the_emulator_clock(make_emu: Any, session: Any, emu_clock: Any) -> None:
    emu = await make_emu(
        clock=emu_clock, access_token_lifetime=60, refresh_token_lifetime=600, code_lifetime=30
    )
    endpoint = TokenEndpoint(session, emu)
    late_code = emu.issue_code()
    data = grant(await endpoint.code(emu.issue_code()))
    assert data["expires_in"] == 60
    emu_clock.advance(59.9)
    assert await endpoint.api(data["access_token"]) == 200
    emu_clock.advance(0.1)
    assert await endpoint.api(data["access_token"]) == 401
    refused(await endpoint.code(late_code), 400, "Authorization code has expired")
    emu_clock.advance(540)  # the refresh token is 600 s old
    refused(await endpoint.refresh(data["refresh_token"]), 401, "Token has expired")


async def test_fractional_lifetimes_are_sent_as_given(make_emu: Any) -> None:
    emu = await make_emu(access_token_lifetime=0.5)
    assert emu.issue_tokens()["expires_in"] == 0.5
    assert emu.issue_tokens(access_lifetime=5)["expires_in"] == 5


# --- what is refused ------------------------------------------------------------------------


async def test_unknown_codes_and_refresh_tokens(emu: Emulator, endpoint: TokenEndpoint) -> None:
    refused(await endpoint.code("nope"), 400, "Cannot decrypt the authorization code")
    refused(await endpoint.refresh("nope"), 401, "Cannot decrypt the refresh token")


async def test_grants_are_bound_to_their_client(emu: Emulator, endpoint: TokenEndpoint) -> None:
    emu.oauth.register("other", "other-secret", "https://other.example/cb")
    code = emu.issue_code(client_id="other")
    refused(await endpoint.code(code), 400, "Authorization code was not issued to this client")
    theirs = emu.issue_tokens(client_id="other")
    refused(await endpoint.refresh(theirs["refresh_token"]), 401, "Token is not linked to client")
    # The other client itself can use them.
    as_other = {"client_id": "other", "client_secret": "other-secret"}
    grant(await endpoint.code(code, redirect_uri="https://other.example/cb", **as_other))


@pytest.mark.parametrize(
    "params",
    [
        {"client_secret": "wrong"},
        {"client_secret": ""},
        {"client_id": "unknown"},
        {"redirect_uri": "https://evil.example/cb"},
    ],
)
async def test_client_authentication(emu: Emulator, endpoint: TokenEndpoint, params: Any) -> None:
    code = emu.issue_code()
    body = refused(await endpoint.code(code, **params), 401, None)
    assert body["detail"] == "Client authentication failed"
    grant(await endpoint.code(code))  # the failed attempt did not spend the code


@pytest.mark.parametrize(
    ("grant_type", "missing"),
    [
        ("authorization_code", "grant_type"),
        ("authorization_code", "client_id"),
        ("authorization_code", "redirect_uri"),
        ("authorization_code", "code"),
        ("refresh_token", "refresh_token"),
    ],
)
async def test_missing_parameters(
    emu: Emulator, endpoint: TokenEndpoint, grant_type: str, missing: str
) -> None:
    params: dict[str, str | None] = {
        "grant_type": grant_type,
        "code": emu.issue_code(),
        "refresh_token": emu.issue_tokens()["refresh_token"],
        missing: None,
    }
    refused(await endpoint.post(**params), 400, f"Check the `{missing}` parameter")


async def test_unsupported_grant_type(endpoint: TokenEndpoint) -> None:
    body = refused(
        await endpoint.post(grant_type="password"), 400, "Check the `grant_type` parameter"
    )
    assert "not supported" in body["detail"]


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"", "application/json"),
        (b"   ", "application/json"),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"grant_type": 5}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"grant_type=authorization_code", "text/plain"),
        (b"grant_type=a&grant_type=b", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_bodies(
    emu: Emulator, session: aiohttp.ClientSession, raw: bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type}
    async with session.post(emu.url + TOKEN_PATH, data=raw, headers=headers) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
        assert "hint" in json.loads(await resp.read())


async def test_only_post(emu: Emulator, session: aiohttp.ClientSession) -> None:
    for method in ("GET", "PUT", "DELETE"):
        async with session.request(method, emu.url + TOKEN_PATH) as resp:
            assert resp.status == 405
    assert emu.stats.token_requests == 3


# --- the endpoint's own pipeline -------------------------------------------------------------


async def test_no_bearer_token_and_no_rate_limit(make_emu: Any, session: Any) -> None:
    emu = await make_emu(token_rps=1, account_rps=2)
    endpoint = TokenEndpoint(session, emu)
    for _ in range(6):
        grant(await endpoint.code(emu.issue_code()))
    assert emu.stats.rate_limited == 0
    assert [e.token for e in emu.request_log] == [None] * 6


async def test_a_blocked_account_refuses_the_token_endpoint_too(
    make_emu: Any, session: Any
) -> None:
    emu = await make_emu(token_rps=1, block_after=0)
    endpoint = TokenEndpoint(session, emu)
    assert await endpoint.api(emu.admin_token) == 200
    assert await endpoint.api(emu.admin_token) == 429  # blocks the account
    status, content_type, _ = await endpoint.code(emu.issue_code())
    assert (status, content_type) == (403, "text/html")
    assert emu.request_log[-1].outcome == "blocked"


async def test_counters_and_log(emu: Emulator, endpoint: TokenEndpoint) -> None:
    data = grant(await endpoint.code(emu.issue_code()))
    grant(await endpoint.refresh(data["refresh_token"]))
    refused(await endpoint.refresh(data["refresh_token"]), 401, "Token has been revoked")
    await endpoint.api(emu.admin_token)
    assert emu.stats.token_requests == 3
    assert emu.stats.requests == 4
    assert emu.stats.token_grants == {"authorization_code": 1, "refresh_token": 1}
    entries = [e for e in emu.request_log if e.path == TOKEN_PATH]
    assert [(e.method, e.status, e.outcome) for e in entries] == [
        ("POST", 200, "ok"),
        ("POST", 200, "ok"),
        ("POST", 401, "401"),
    ]
    assert entries[1].json["refresh_token"] == data["refresh_token"]


async def test_scripted_faults_naming_the_path_apply(
    emu: Emulator, endpoint: TokenEndpoint
) -> None:
    code = emu.issue_code()
    emu.faults.add(Fault.status(500), path=TOKEN_PATH)
    status, _, body = await endpoint.code(code)
    assert status == 500 and "trace_id" in json.loads(body)
    grant(await endpoint.code(code))  # nothing was applied: the code still works
    assert emu.stats.faults == {"500": 1}


async def test_commit_then_drop_spends_the_refresh_token(
    emu: Emulator, endpoint: TokenEndpoint
) -> None:
    data = emu.issue_tokens()
    emu.faults.add(Fault.commit_then_drop(), path="/oauth2/*")
    with pytest.raises(aiohttp.ClientConnectionError):
        await endpoint.refresh(data["refresh_token"])
    refused(await endpoint.refresh(data["refresh_token"]), 401, "Token has been revoked")
    entry = next(e for e in emu.request_log if e.path == TOKEN_PATH)
    assert (entry.status, entry.processed_status) == (None, 200)


async def test_reset_applies_nothing(emu: Emulator, endpoint: TokenEndpoint) -> None:
    data = emu.issue_tokens()
    emu.faults.add(Fault.reset(), path=TOKEN_PATH)
    with pytest.raises(aiohttp.ClientConnectionError):
        await endpoint.refresh(data["refresh_token"])
    grant(await endpoint.refresh(data["refresh_token"]))


async def test_path_less_and_random_faults_leave_the_endpoint_alone(
    make_emu: Any, session: Any
) -> None:
    emu = await make_emu(token_rps=None, account_rps=None, fault_rates={"500": 1.0})
    endpoint = TokenEndpoint(session, emu)
    emu.faults.add(Fault.status(503), times=None)  # any path
    grant(await endpoint.code(emu.issue_code()))
    assert await endpoint.api(emu.admin_token) == 503
    assert emu.faults.scripted[0].hits == 1


async def test_seeded_grants_are_reproducible(make_emu: Any) -> None:
    one, two = await make_emu(seed=5), await make_emu(seed=5)
    assert one.issue_code() == two.issue_code()
    assert one.issue_tokens() == two.issue_tokens()
    other = await make_emu(seed=None)
    assert other.issue_code() != one.issue_code()


async def test_config_names_the_client(make_emu: Any, session: Any) -> None:
    emu = await make_emu(
        oauth_client_id="cid", oauth_client_secret="sec", oauth_redirect_uri="https://a.example/"
    )
    assert emu.oauth.clients["cid"].redirect_uri == "https://a.example/"
    assert "sec" not in repr(emu.oauth.clients["cid"])
    endpoint = TokenEndpoint(session, emu)
    grant(await endpoint.code(emu.issue_code()))


def test_lifetimes_must_be_positive() -> None:
    for name in ("access_token_lifetime", "refresh_token_lifetime", "code_lifetime"):
        with pytest.raises(ValueError):
            EmulatorConfig(**{name: 0})
