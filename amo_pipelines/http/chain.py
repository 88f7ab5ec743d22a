"""Policies wrap the transport one behaviour at a time (retries, auth, rate limits, logging),
each a small object with ``send(request, next)``, composed by :func:`chain`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from functools import partial
from typing import Protocol

from attrs import evolve
from multidict import CIMultiDictProxy
from yarl import URL

from ..auth.providers import AuthProvider, KnowsTokenDue, LongLivedToken
from ..errors import (
    ClientClosedError,
    RateLimitedError,
    RequestNotSentError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
)
from ..transport.base import Request, Response, Transport, new_request, sealed_headers
from .clock import Clock

logger = logging.getLogger("amo_pipelines")

Handler = Callable[[Request], Awaitable[Response]]

RETRYABLE_REFRESH_FAILURES = (
    TransportError,
    ServerError,
    RateLimitedError,
    UnexpectedResponseError,
)

current_attempt: ContextVar[int] = ContextVar("amo_pipelines_attempt", default=1)
"""Which attempt of the request the current task is sending (1 = the first); the retry
policy sets it, the logging policy reports it."""

send_check: ContextVar[Callable[[Request], None] | None] = ContextVar(
    "amo_pipelines_send_check", default=None
)
"""A check the throttle runs on each request sent in this context once it has its
rate-limit slot, right before it goes on the wire; an exception there gives the slot back
and sends nothing. Set around work whose requests must stop the moment a condition fails
(an apply whose account lock was lost); tasks started inside inherit it."""


class Policy(Protocol):
    """One behaviour around sending: ``send`` gets the request and ``next``, the rest of the
    chain, and returns its response (or raises). Requests and responses are frozen values:
    to change one, pass ``attrs.evolve(request, ...)`` on. A policy may also offer
    ``wrap(next) -> Handler``, which :func:`chain` prefers: a handler with no coroutine
    frame of its own for the requests it only hands on."""

    async def send(self, request: Request, next: Handler) -> Response: ...


def chain(policies: Sequence[Policy], transport: Transport) -> Handler:
    """Compose policies outermost first, the transport innermost."""
    handler: Handler = transport.send
    for policy in reversed(policies):
        # A partial, not a wrapper coroutine: one frame less per policy per request. A
        # policy that is often idle may offer ``wrap(next)``: a handler that hands the
        # request straight on (no frame of its own) while it has nothing to do.
        wrap = getattr(policy, "wrap", None)
        handler = wrap(handler) if wrap is not None else partial(policy.send, next=handler)
    return handler


class CloseGate:
    """One client's closing, as its policies see it.

    Once :meth:`close` is called nothing more is sent: the throttle checks the gate before
    a request queues for its rate-limit slot and again once it has the slot (giving the
    slot back if closed), the retry policy's backoff wakes up at once and retries no more,
    and :meth:`drained` tells when the requests already on the wire have their answers.
    """

    __slots__ = ("_drained", "_waker", "closed", "on_wire")

    def __init__(self) -> None:
        self.closed = False
        self.on_wire = 0
        """Requests of this client on the wire now (the throttle counts them)."""
        self._waker: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    def check(self, request: Request) -> None:
        """Raise :class:`ClientClosedError` if closed: ``request`` is not sent."""
        if self.closed:
            raise self.refusal(request)

    @staticmethod
    def refusal(request: Request) -> ClientClosedError:
        return ClientClosedError(
            f"the AmoClient was closed: {request.method} {request.url.path} was not sent"
        )

    def close(self) -> None:
        self.closed = True
        if self._waker is not None and not self._waker.done():
            self._waker.set_result(None)

    async def sleep(self, clock: Clock, seconds: float) -> None:
        """``clock.sleep(seconds)``, cut short by :meth:`close`."""
        if self.closed:
            return
        if seconds <= 0:
            await clock.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        if self._waker is None or self._waker.get_loop() is not loop:
            self._waker = loop.create_future()
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        try:
            await asyncio.wait((sleeper, self._waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sleeper.done():
                sleeper.cancel()
            elif not sleeper.cancelled():
                sleeper.result()  # surface a failing clock

    def landed(self) -> None:
        """After ``on_wire`` went down while closed: wake :meth:`drained` at zero."""
        if not self.on_wire and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drained(self) -> None:
        """Wait until no request of this client is on the wire."""
        if self.on_wire:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained


class TokenDue(Exception):
    """Inside the request chain only: the access token a request carries fell due (or was
    replaced) while the request waited for its rate-limit slot. Nothing was sent; the slot
    goes back and :class:`AuthPolicy` fetches the current token."""


class AuthPolicy:
    """Adds ``Authorization: Bearer`` to requests for the account's origin only, and lets the
    provider refresh once after a 401, then resends the request once with the new token.

    It sits outside the throttle: waiting for a token refresh holds no rate-limit slot, and
    the resend after a 401 takes a slot of its own. A provider that can tell synchronously
    whether its token is still good to send (:class:`~amo_pipelines.auth.providers.KnowsTokenDue`,
    e.g. ``OAuth2``) has it checked again once the request has its slot (:meth:`check`,
    run by the throttle): a request that waited across the moment its token fell due goes
    back for the new one instead of carrying the old one to a server where another process
    may have just revoked it by refreshing.
    """

    RESIGN_LIMIT = 3

    def __init__(self, provider: AuthProvider, origin: URL) -> None:
        self._provider = provider
        self._origin = (origin.scheme, origin.host, origin.port)
        # A fixed token: exactly LongLivedToken (a subclass may change token() or
        # on_unauthorized), whose token never changes and whose 401 is final.
        self._fixed = provider.fixed_token() if type(provider) is LongLivedToken else None
        self._ready = provider.ready_token if isinstance(provider, KnowsTokenDue) else None
        # Requests carry one of a few header sets the client sealed once: each set's
        # signed copy is kept for the current token instead of being rebuilt per request.
        self._signed: dict[int, tuple[Mapping[str, str], str, Mapping[str, str]]] = {}

    def _sign(self, headers: Mapping[str, str], token: str) -> Mapping[str, str]:
        cached = self._signed.get(id(headers))
        if cached is not None and cached[0] is headers and cached[1] == token:
            return cached[2]
        signed = sealed_headers({**headers, "authorization": f"Bearer {token}"})
        if type(headers) is CIMultiDictProxy:  # sealed: it cannot change under the cache
            if len(self._signed) >= 8:
                self._signed.clear()
            self._signed[id(headers)] = (headers, token, signed)
            self._signed[id(signed)] = (signed, token, signed)  # signed already: as it is
        return signed

    def presign(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The header set for the client to build its requests with: with a fixed token,
        signed already (requests for the account's origin then go on as they are, with
        no copy per request; any other keeps the rule of :meth:`send`)."""
        return headers if self._fixed is None else self._sign(headers, self._fixed)

    async def _with_token(self, request: Request) -> Request:
        try:
            token = await self._provider.token()
        except RETRYABLE_REFRESH_FAILURES as e:
            raise _not_sent(request, e) from e
        return new_request(
            request.method,
            request.url,
            self._sign(request.headers, token),
            request.body,
            request.idempotent,
        )

    def signed_now(self, request: Request) -> Request | None:
        """``request`` as :meth:`send` hands it on, when that takes no waiting: with a
        fixed token (whose 401 is final), for the account's origin. None otherwise."""
        token = self._fixed
        if token is None:
            return None
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            return None
        headers = request.headers
        signed = self._sign(headers, token)
        if signed is headers:
            return request
        return new_request(request.method, url, signed, request.body, request.idempotent)

    def wrap(self, next: Handler) -> Handler:
        """For :func:`chain`: with a fixed token, a request for the account's origin is
        signed and handed on without a frame of its own (what :meth:`send` would do)."""
        if self._fixed is None:
            return partial(self.send, next=next)
        signed_now, send = self.signed_now, self.send

        def handler(request: Request) -> Awaitable[Response]:
            signed = signed_now(request)
            return send(request, next) if signed is None else next(signed)

        return handler

    @property
    def check(self) -> Callable[[Request], None] | None:
        """The last check before a request is sent (None when the provider offers none)."""
        return None if self._ready is None else self._check

    def _check(self, request: Request) -> None:
        assert self._ready is not None
        bearer = request.headers.get("authorization")
        if bearer is None:
            return  # not for the account's origin: it carries no token
        token = self._ready()
        if token is None or bearer != f"Bearer {token}":
            raise TokenDue()

    async def _send_signed(self, request: Request, next: Handler) -> tuple[Request, Response]:
        """``request`` with the current token, and its answer."""
        for _ in range(self.RESIGN_LIMIT):
            sent = await self._with_token(request)
            try:
                return sent, await next(sent)
            except TokenDue:
                continue
        raise RequestNotSentError(
            "no access token: it fell due every time this request waited for its rate-limit slot",
            method=request.method,
            path=request.url.path,
        )

    async def send(self, request: Request, next: Handler) -> Response:
        url = request.url
        if (url.scheme, url.host, url.port) != self._origin:
            # The token belongs to one account; it never travels anywhere else.
            headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
            return await next(evolve(request, headers=headers))
        if self._ready is None:
            sent = await self._with_token(request)
            response = await next(sent)
        else:
            sent, response = await self._send_signed(request, next)
        if response.status == 401:
            try:
                again = await self._provider.on_unauthorized(sent, response)
            except RETRYABLE_REFRESH_FAILURES as e:
                raise _not_sent(request, e) from e
            if again:
                response = (await self._send_signed(request, next))[1]
        return response


def _not_sent(request: Request, error: Exception) -> RequestNotSentError:
    """A token refresh that failed in a way worth another try (the token endpoint was
    unreachable, overloaded or garbled) means *this* request was not sent (or, after a 401,
    not applied): say so, so that the retry policy may try it again and the batch layer
    does not reconcile a write that never happened. Verdicts (a revoked token, refused
    client credentials, an empty store) are not caught and pass through unchanged."""
    return RequestNotSentError(
        f"no access token: the token refresh failed ({error})",
        method=request.method,
        path=request.url.path,
    )


def _is_secret_exchange(request: Request) -> bool:
    """Token endpoint traffic: both bodies are credentials, never logged."""
    return request.url.path.startswith("/oauth2/")


class LoggingPolicy:
    """Logs each request at DEBUG: method, path, status, duration and attempt (see
    :data:`current_attempt`). Never headers; bodies only with ``log_bodies`` (they hold
    business data), and never those of the OAuth token endpoint (they hold credentials)."""

    def __init__(self, *, log_bodies: bool = False) -> None:
        self._log_bodies = log_bodies

    def wrap(self, next: Handler) -> Handler:
        """For :func:`chain`: while DEBUG is off, the request goes straight to ``next``."""
        logged = partial(self.send, next=next)
        enabled = logger.isEnabledFor

        def handler(request: Request) -> Awaitable[Response]:
            return logged(request) if enabled(logging.DEBUG) else next(request)

        return handler

    async def send(self, request: Request, next: Handler) -> Response:
        if not logger.isEnabledFor(logging.DEBUG):
            return await next(request)
        attempt = current_attempt.get()
        started = time.perf_counter()
        try:
            response = await next(request)
        except Exception as e:
            logger.debug(
                "%s %s failed after %.3fs (attempt %d): %s",
                request.method,
                request.url.path_qs,
                time.perf_counter() - started,
                attempt,
                type(e).__name__,
            )
            raise
        logger.debug(
            "%s %s -> %d in %.3fs (attempt %d)",
            request.method,
            request.url.path_qs,
            response.status,
            time.perf_counter() - started,
            attempt,
        )
        if self._log_bodies and not _is_secret_exchange(request):
            logger.debug("request body: %r; response body: %r", request.body, response.body[:2000])
        return response
