"""OAuth 2.0 for an integration: the authorization-code grant, then refresh-token rotation,
kept in a :class:`~amo_pipelines.auth.tokens.TokenStore`.

The provider protocols and :class:`LongLivedToken` (a fixed token) are in
:mod:`amo_pipelines.auth.providers` (importable from here too); one exchange with the token
endpoint is :mod:`amo_pipelines.auth.grant`.

A provider never exposes a secret through ``repr``/``str``, logs or exception messages; the
access token only ever lives in the ``Authorization`` header of requests bound for the
account's own origin.

How OAuth2 reaches the token endpoint
-------------------------------------
The provider has no transport of its own. The :class:`~amo_pipelines.AmoClient` it is given
to hands it a :class:`TokenEndpoint`: ``POST {account origin}/oauth2/access_token`` through
the *client's transport* and its DEBUG request log, but **not** through its API retry, auth,
throttle or user policies (the token chain of :mod:`amo_pipelines.http.build`). Requests
that need a token wait for the refresh *before* they take a rate-limit slot, so a refresh
that had to queue for a slot could wait for itself; and a refresh is one request per day
per integration, not load worth budgeting. A refresh is retried only when it certainly
was not sent (:class:`~amo_pipelines.RequestNotSentError`): resending one that may have
been processed would present an already-used refresh token.

Single flight, rotation, revocation
-----------------------------------
* Any number of concurrent callers that find the token missing, expiring (within
  ``refresh_margin``) or refused (a 401) share one refresh: the first starts it as a task,
  the rest await the same task (shielded: a cancelled caller does not cancel it; a failed
  one is forgotten, so the next caller starts afresh). A caller re-checks the current token
  before starting one, so a refresh that landed meanwhile is reused, not repeated.
* Every refresh first reloads the store: another process may have refreshed already.
* The new token set is saved through the store *before* the new access token is handed to
  any request. If saving fails, the error goes to the callers and the unsaved set is kept
  and saved first on the next attempt (its refresh token is the only valid one now).
* A 401 from the token endpoint (``"hint": "Token has been revoked"`` and the like) reloads
  the store (at once and again after ``reload_grace`` seconds): a newer token set there is
  used; otherwise :class:`~amo_pipelines.TokenRevokedError` says to re-authorize. A refresh
  token the server refused is not presented again by this provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any

from yarl import URL

from ..errors import (
    AuthorizationRequiredError,
    ClientClosedError,
    InvalidInputError,
    TokenRevokedError,
)
from ..http.clock import Clock
from ..model.inputs import check_seconds, check_text
from ..transport.base import Request, Response
from .grant import Refused, post_grant
from .providers import (
    TOKEN_PATH,
    AuthProvider,
    KnowsTokenDue,
    LongLivedToken,
    TokenEndpoint,
    UsesTokenEndpoint,
)
from .tokens import WALL_CLOCK, MemoryTokenStore, TokenSet, TokenStore, check_token, fingerprint

__all__ = [
    "TOKEN_PATH",
    "AuthProvider",
    "KnowsTokenDue",
    "LongLivedToken",
    "OAuth2",
    "TokenEndpoint",
    "UsesTokenEndpoint",
    "check_token",
    "fingerprint",
]

logger = logging.getLogger("amo_pipelines")


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _check_redirect_uri(value: object) -> str:
    if not isinstance(value, str) or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        raise InvalidInputError("must be a URL without spaces", field="redirect_uri")
    check_text(value, "redirect_uri")  # it goes into every token request's body
    try:
        url = URL(value)
    except ValueError:
        raise InvalidInputError("is not a URL", field="redirect_uri") from None
    if url.scheme not in ("https", "http") or not url.host or url.fragment:
        raise InvalidInputError(
            "must be the absolute http(s) URL registered for the integration",
            field="redirect_uri",
        )
    return value


class OAuth2:
    """OAuth 2.0 for an amoCRM / Kommo integration: code exchange, then refresh rotation.

    ``client_id``, ``client_secret`` and ``redirect_uri`` are the integration's keys and its
    registered redirect URI. ``store`` keeps the tokens (default: a
    :class:`~amo_pipelines.MemoryTokenStore`). The access token is refreshed
    ``refresh_margin`` seconds before it expires (at most half its lifetime before, for
    short-lived tokens: see :meth:`margin_for`; the same rule for tokens loaded from the
    store), and once after a 401. ``reload_grace``: after the server refuses
    a refresh token, how long to wait before looking at the store a second time for a token
    another process may be saving right now. ``clock`` reads expiry (default: Unix time).

    One provider serves one account: give it to ``AmoClient(auth=...)`` (several clients
    of the same account may share it); :meth:`exchange_code` and refreshes go through
    such a client. See the module docstring for single flight, rotation and revocation.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        store: TokenStore | None = None,
        refresh_margin: float = 300.0,
        reload_grace: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.client_id = check_token(client_id, "client_id")
        self._client_secret = check_token(client_secret, "client_secret")
        self.redirect_uri = _check_redirect_uri(redirect_uri)
        self.refresh_margin = check_seconds(refresh_margin, "refresh_margin")
        self.reload_grace = check_seconds(reload_grace, "reload_grace")
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.clock: Clock = clock if clock is not None else WALL_CLOCK
        self._fingerprint = fingerprint(f"oauth2:{client_id}")
        self._tokens: TokenSet | None = None
        self._unsaved: TokenSet | None = None
        self._refused: set[str] = set()  # fingerprints of refresh tokens the server refused
        self._flight: asyncio.Task[TokenSet] | None = None
        self._endpoints: list[TokenEndpoint] = []
        self._origin: URL | None = None

    # --- what the client sees -------------------------------------------------------------

    @property
    def fingerprint(self) -> str:
        """Derived from ``client_id``: stable across token rotations (it keys rate limits)."""
        return self._fingerprint

    @property
    def tokens(self) -> TokenSet | None:
        """The token set in use, if one was loaded or obtained yet."""
        return self._tokens

    def __repr__(self) -> str:
        return f"OAuth2(client_id={self.client_id!r}, tokens={self._tokens!r})"

    async def token(self) -> str:
        current = self._tokens
        if current is None or not self._fresh(current):
            current = await self._fly(stale=current)
        return current.access_token

    def ready_token(self) -> str | None:
        """The access token in use if it is not due for a refresh yet, else None (then
        :meth:`token` refreshes, or finds the set another process saved)."""
        current = self._tokens
        if current is None or not self._fresh(current):
            return None
        return current.access_token

    async def on_unauthorized(self, request: Request, response: Response) -> bool:
        current = self._tokens
        if current is None:
            return False
        if _bearer(request) != current.access_token:
            return True  # refreshed since that request went out: resend with the new token
        await self._fly(stale=current)
        return True

    def attach(self, endpoint: TokenEndpoint) -> None:
        origin = endpoint.origin
        if self._origin is not None and origin != self._origin:
            raise InvalidInputError(
                f"this OAuth2 provider serves {self._origin}; its tokens belong to that "
                "account (use one OAuth2, with its own store, per account)",
                field="auth",
            )
        self._origin = origin
        self._endpoints.append(endpoint)

    async def detach(self, endpoint: TokenEndpoint) -> None:
        """Forget ``endpoint``; a refresh in flight finishes first (its answer carries the
        only valid refresh token, so it must not be cut off by closing the transport)."""
        flight = self._flight
        if flight is not None and not flight.done():
            await asyncio.wait({flight})
        with contextlib.suppress(ValueError):
            self._endpoints.remove(endpoint)

    # --- public operations ----------------------------------------------------------------

    async def exchange_code(self, code: str) -> TokenSet:
        """Trade an authorization code (from the redirect to ``redirect_uri``) for tokens,
        save them in the store and use them from now on."""
        check_token(code, "code")
        self._endpoint()  # fail before waiting if no client can carry the request
        while True:
            flight = self._flight
            if flight is None or flight.done():
                break
            await asyncio.wait({flight})  # let a refresh in flight land first
        return await asyncio.shield(self._start(self._exchange(code)))

    async def refresh(self) -> TokenSet:
        """Refresh now (or join the refresh in flight) and return the new token set.

        A newer set that another process saved in the store counts as the refresh."""
        return await self._fly(stale=self._tokens, force=True)

    # --- single flight --------------------------------------------------------------------

    def margin_for(self, tokens: TokenSet) -> float:
        """How long before ``tokens`` expire they are refreshed: ``refresh_margin``, but at
        most half the access token's lifetime (``TokenSet.expires_in``, when known).

        One rule for every set, whether this provider obtained it or loaded it from the
        store, so processes sharing a store agree on when a set is due: the first to see
        it due refreshes, the rest find the new set in the store."""
        margin = self.refresh_margin
        if tokens.expires_in is not None:
            margin = min(margin, tokens.expires_in / 2)
        return margin

    def _fresh(self, tokens: TokenSet) -> bool:
        return self.clock.now() < tokens.expires_at - self.margin_for(tokens)

    def _better(self, tokens: TokenSet, stale: TokenSet | None) -> bool:
        """Usable instead of ``stale``: another access token, not about to expire."""
        return (stale is None or tokens.access_token != stale.access_token) and self._fresh(tokens)

    async def _fly(self, *, stale: TokenSet | None, force: bool = False) -> TokenSet:
        """Join the refresh in flight, or start one. ``stale`` is the set the caller found
        wanting (None: nothing loaded yet); ``force``: refresh even a fresh stored set
        unless it differs from ``stale``."""
        flight = self._flight
        if flight is None or flight.done():
            current = self._tokens
            # The double check: a refresh may have landed since the caller looked.
            if current is not None and current is not stale and self._better(current, stale):
                return current
            flight = self._start(self._rotate(stale, force=force))
        # Shielded: a caller that is cancelled stops waiting; the refresh goes on for the rest.
        return await asyncio.shield(flight)

    def _start(self, work: Coroutine[Any, Any, TokenSet]) -> asyncio.Task[TokenSet]:
        flight: asyncio.Task[TokenSet] = asyncio.get_running_loop().create_task(work)
        self._flight = flight
        flight.add_done_callback(self._landed)
        return flight

    def _landed(self, flight: asyncio.Task[TokenSet]) -> None:
        if self._flight is flight:
            self._flight = None
        if not flight.cancelled():
            flight.exception()  # retrieved: no "never retrieved" warning if nobody waits

    @contextlib.asynccontextmanager
    async def _store_lock(self) -> AsyncIterator[None]:
        lock = getattr(self.store, "lock", None)
        if lock is None:
            yield
            return
        async with lock():
            yield

    async def _rotate(self, stale: TokenSet | None, *, force: bool = False) -> TokenSet:
        async with self._store_lock():
            if self._unsaved is not None:
                return await self._commit(self._unsaved)
            # Another process (or an earlier run) may have refreshed already.
            stored = await self.store.load()
            wanted = not (force and stale is None)  # a forced first refresh takes none
            if stored is not None and wanted and self._better(stored, stale):
                return self._adopt(stored, "loaded from the store")
            base = stored if stored is not None else self._tokens
            if base is None:
                raise AuthorizationRequiredError(
                    "no OAuth tokens yet: authorize the integration and pass the code to "
                    "OAuth2.exchange_code()"
                )
            if fingerprint(base.refresh_token) in self._refused:
                raise TokenRevokedError(hint="refused earlier")
            try:
                new = await self._refresh_with(base)
            except Refused as refused:
                other = await self._reload_after(base)
                if other is None:
                    raise self._revoked(refused) from None
                if self._better(other, stale):
                    return self._adopt(other, "rotated by another process")
                try:
                    new = await self._refresh_with(other)
                except Refused as again:
                    raise self._revoked(again) from None
            return await self._commit(new)

    async def _exchange(self, code: str) -> TokenSet:
        async with self._store_lock():
            new = await self._grant(
                {"grant_type": "authorization_code", "code": code}, secrets=(code,)
            )
            self._unsaved = None  # superseded: the user authorized again
            self._refused.clear()
            return await self._commit(new)

    def _adopt(self, tokens: TokenSet, why: str) -> TokenSet:
        logger.debug("OAuth2 %s: tokens %s %s", self.client_id, _fp(tokens), why)
        self._tokens = tokens
        return tokens

    async def _commit(self, tokens: TokenSet) -> TokenSet:
        # Kept until saved: after a refresh its refresh token is the only valid one.
        self._unsaved = tokens
        await self.store.save(tokens)  # before any request may use the new access token
        self._unsaved = None
        self._tokens = tokens
        logger.debug(
            "OAuth2 %s: new tokens %s saved (%s)",
            self.client_id,
            _fp(tokens),
            type(self.store).__name__,
        )
        return tokens

    async def _reload_after(self, refused: TokenSet) -> TokenSet | None:
        """After a refresh token was refused: a newer set another process saved, if any."""
        self._refused.add(fingerprint(refused.refresh_token))
        for wait in (0.0, self.reload_grace):
            if wait:
                await self.clock.sleep(wait)
            stored = await self.store.load()
            if stored is not None and fingerprint(stored.refresh_token) not in self._refused:
                return stored
            if not self.reload_grace:
                break
        return None

    def _revoked(self, refused: Refused) -> TokenRevokedError:
        error = refused.error
        logger.warning(
            "OAuth2 %s: the refresh token was refused (%s); re-authorization needed",
            self.client_id,
            refused.hint or error.detail or error.status,
        )
        return TokenRevokedError(
            hint=refused.hint,
            title=error.title,
            body=error.body,
            content_type=error.content_type,
            trace_id=error.trace_id,
        )

    # --- the token endpoint ---------------------------------------------------------------

    def _endpoint(self) -> TokenEndpoint:
        """The newest endpoint whose client is not closing (a closing client sends
        nothing more, so a provider shared with other clients uses theirs)."""
        for endpoint in reversed(self._endpoints):
            if not getattr(endpoint, "closing", False):
                return endpoint
        raise ClientClosedError(
            "OAuth2 reaches the token endpoint through an open AmoClient: create one "
            "with AmoClient(auth=...) first"
            if not self._endpoints
            else "the AmoClient this OAuth2 provider is attached to is closing"
        )

    async def _refresh_with(self, tokens: TokenSet) -> TokenSet:
        logger.debug("OAuth2 %s: refreshing %s", self.client_id, _fp(tokens))
        try:
            return await self._grant(
                {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
                secrets=(tokens.refresh_token, tokens.access_token),
            )
        except Refused:
            self._refused.add(fingerprint(tokens.refresh_token))
            raise

    async def _grant(self, grant: Mapping[str, str], *, secrets: tuple[str, ...]) -> TokenSet:
        endpoint = self._endpoint()
        payload = {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            **grant,
            "redirect_uri": self.redirect_uri,
        }
        return await post_grant(
            endpoint,
            payload,
            secrets=(self._client_secret, *secrets),
            sent_at=self.clock.now(),
        )


def _fp(tokens: TokenSet) -> str:
    return f"<{fingerprint(tokens.access_token)}>"
