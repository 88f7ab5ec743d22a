"""The OAuth 2.0 token endpoint: ``POST /oauth2/access_token`` with both grants.

Registered clients, authorization codes and refresh tokens live in an :class:`OAuthServer`;
access tokens it issues go into ``state.tokens`` with their expiry, so the API gateway
accepts them like any other token. The request pipeline of the endpoint is its own (see
:func:`oauth_gateway`): it is logged and counted like every request, refused while the
account is blocked, and subject to scripted faults that name its path, but it needs no
bearer token and is not rate limited.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from attrs import define, field

from .config import Clock
from .faults import Fault, FaultInjector
from .gateway import RUNTIME, Handler, _finish, admit, apply_fault
from .render import problem
from .state import AccountState

TOKEN_PATH = "/oauth2/access_token"
GRANT_TYPES = ("authorization_code", "refresh_token")
PARAMETERS = ("grant_type", "client_id", "client_secret", "redirect_uri", "code", "refresh_token")

MALFORMED = (
    "The request is missing a required parameter, includes an invalid parameter value, "
    "includes a parameter more than once, or is otherwise malformed."
)
UNSUPPORTED = "The authorization grant type is not supported by the authorization server."
INVALID_GRANT = (
    "The provided authorization grant (e.g., authorization code, resource owner credentials) "
    "or refresh token is invalid, expired, revoked, does not match the redirection URI used "
    "in the authorization request, or was issued to another client."
)
CLIENT_FAILED = "Client authentication failed"
BAD_REFRESH = "The refresh token is invalid."


@define
class OAuthClient:
    """An integration registered with the account."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str


@define
class AuthCode:
    client_id: str
    admin: bool
    user_id: int
    expires_at: float
    used: bool = False


@define
class RefreshToken:
    client_id: str
    admin: bool
    user_id: int
    access_token: str = field(repr=False)
    """The access token issued with it; revoked when this refresh token is used."""
    expires_at: float
    used: bool = False


class GrantError(Exception):
    """A refused grant: the problem+json response to send."""

    def __init__(self, status: int, detail: str, hint: str | None = None) -> None:
        super().__init__(detail)
        self.response = problem(status, detail, **({"hint": hint} if hint else {}))


def _malformed(parameter: str) -> GrantError:
    return GrantError(400, MALFORMED, f"Check the `{parameter}` parameter")


class OAuthServer:
    """The account's authorization server.

    ``issue_code()`` stands in for the consent screen (an administrator granting access);
    ``issue_tokens()`` skips the code step. Codes and refresh tokens are single-use; using a
    refresh token revokes it and the access token issued with it.
    """

    def __init__(
        self,
        state: AccountState,
        *,
        clock: Clock,
        access_lifetime: float,
        refresh_lifetime: float,
        code_lifetime: float,
        seed: int | None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.code_lifetime = code_lifetime
        self.clients: dict[str, OAuthClient] = {}
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self._rng = None if seed is None else random.Random(f"oauth:{seed}")

    def register(self, client_id: str, client_secret: str, redirect_uri: str) -> OAuthClient:
        client = self.clients[client_id] = OAuthClient(client_id, client_secret, redirect_uri)
        return client

    def _client(self, client_id: str | None) -> OAuthClient:
        if client_id is None:
            return next(iter(self.clients.values()))
        return self.clients[client_id]

    def _secret(self, kind: str) -> str:
        bits = secrets.randbits(128) if self._rng is None else self._rng.getrandbits(128)
        return f"emu-oauth-{kind}-{bits:032x}"

    def issue_code(
        self, *, client_id: str | None = None, admin: bool = True, user_id: int = 1
    ) -> str:
        """An authorization code for ``client_id`` (default: the first registered client),
        as the redirect after the consent screen would carry it."""
        client = self._client(client_id)
        code = self._secret("code")
        self.codes[code] = AuthCode(
            client.client_id, admin, user_id, self.clock() + self.code_lifetime
        )
        return code

    def issue_tokens(
        self,
        *,
        client_id: str | None = None,
        admin: bool = True,
        user_id: int = 1,
        access_lifetime: float | None = None,
    ) -> dict[str, Any]:
        """A fresh token pair, as the endpoint's JSON answer (``expires_in`` included)."""
        client = self._client(client_id)
        lifetime = self.access_lifetime if access_lifetime is None else access_lifetime
        now = self.clock()
        access, refresh = self._secret("access"), self._secret("refresh")
        self.state.add_token(access, admin=admin, user_id=user_id, expires_at=now + lifetime)
        self.refresh_tokens[refresh] = RefreshToken(
            client.client_id, admin, user_id, access, now + self.refresh_lifetime
        )
        return {
            "token_type": "Bearer",
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "access_token": access,
            "refresh_token": refresh,
        }

    def grant(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Answer one token request, or raise :class:`GrantError`."""
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _malformed("grant_type")
        if grant_type not in GRANT_TYPES:
            raise GrantError(400, UNSUPPORTED, "Check the `grant_type` parameter")
        client_id = params.get("client_id")
        if not client_id:
            raise _malformed("client_id")
        client = self.clients.get(client_id)
        if client is None or params.get("client_secret") != client.client_secret:
            raise GrantError(401, CLIENT_FAILED)
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            raise _malformed("redirect_uri")
        if redirect_uri != client.redirect_uri:
            raise GrantError(401, CLIENT_FAILED)
        now = self.clock()
        if grant_type == "authorization_code":
            return self._code_grant(client, params.get("code"), now)
        return self._refresh_grant(client, params.get("refresh_token"), now)

    def _code_grant(self, client: OAuthClient, code: str | None, now: float) -> dict[str, Any]:
        if not code:
            raise _malformed("code")
        info = self.codes.get(code)
        if info is None:
            raise GrantError(400, MALFORMED, "Cannot decrypt the authorization code")
        if now >= info.expires_at:
            raise GrantError(400, INVALID_GRANT, "Authorization code has expired")
        if info.used:
            raise GrantError(400, INVALID_GRANT, "Authorization code has been revoked")
        if info.client_id != client.client_id:
            raise GrantError(400, MALFORMED, "Authorization code was not issued to this client")
        info.used = True
        return self.issue_tokens(client_id=client.client_id, admin=info.admin, user_id=info.user_id)

    def _refresh_grant(self, client: OAuthClient, token: str | None, now: float) -> dict[str, Any]:
        if not token:
            raise _malformed("refresh_token")
        info = self.refresh_tokens.get(token)
        if info is None:
            raise GrantError(401, BAD_REFRESH, "Cannot decrypt the refresh token")
        if info.client_id != client.client_id:
            raise GrantError(401, BAD_REFRESH, "Token is not linked to client")
        if now >= info.expires_at:
            raise GrantError(401, BAD_REFRESH, "Token has expired")
        if info.used:
            raise GrantError(401, BAD_REFRESH, "Token has been revoked")
        info.used = True
        self.state.revoke_token(info.access_token)
        return self.issue_tokens(client_id=client.client_id, admin=info.admin, user_id=info.user_id)


OAUTH = web.AppKey("amo_emulator_oauth", OAuthServer)


def _params(body: bytes, content_type: str) -> dict[str, str]:
    """The request parameters: a JSON object (as amoCRM documents) or a form (RFC 6749)."""
    if not body.strip():
        raise _malformed("grant_type")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise GrantError(400, MALFORMED, "The request body is not valid UTF-8") from None
    if content_type == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            raise GrantError(400, MALFORMED, "The request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise GrantError(400, MALFORMED, "The request body must be a JSON object")
        for key in PARAMETERS:
            if key in data and not isinstance(data[key], str):
                raise _malformed(key)
        return {key: data[key] for key in PARAMETERS if key in data}
    if content_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(text, keep_blank_values=True)
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                raise _malformed(name)
        return dict(pairs)
    raise GrantError(
        400, MALFORMED, "Content-Type must be application/json or application/x-www-form-urlencoded"
    )


def _scripted(faults: FaultInjector, method: str, path: str) -> Fault | None:
    """The first scripted fault that names this path (never one for any path, never a random
    draw: those are for the API, and a refresh lost at random would lock a run out)."""
    for entry in faults.scripted:
        if entry.path is not None and entry.matches(method, path):
            entry.hits += 1
            if entry.remaining is not None:
                entry.remaining -= 1
            return entry.fault
    return None


@web.middleware
async def oauth_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve the token endpoint; hand every other request to the API gateway."""
    if request.path != TOKEN_PATH:
        return await handler(request)
    rt = request.app[RUNTIME]
    server = request.app[OAUTH]
    rt.stats.token_requests += 1
    entry, turned_away = await admit(rt, request, token=None, now=rt.config.clock())
    if turned_away is not None:
        return turned_away
    if request.method != "POST":
        return _finish(rt, entry, problem(405, "Method not allowed"))

    fault = _scripted(rt.faults, request.method, request.path)

    async def grant() -> web.Response:
        try:
            params = _params(entry.body, request.content_type)
            answer = server.grant(params)
        except GrantError as refused:
            return refused.response
        grant_type = params["grant_type"]
        rt.stats.token_grants[grant_type] = rt.stats.token_grants.get(grant_type, 0) + 1
        return web.json_response(answer)

    return await apply_fault(rt, request, entry, fault, grant)
