"""Policies wrap the transport one behaviour at a time (auth, logging; later rate limits
and retries), each a small object with ``send(request, next)``, composed by :func:`chain`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from attrs import evolve

from .auth import AuthProvider
from .transport.base import Request, Response, Transport

logger = logging.getLogger("amo_pipelines")

Handler = Callable[[Request], Awaitable[Response]]


class Policy(Protocol):
    async def send(self, request: Request, next: Handler) -> Response: ...


def chain(policies: Sequence[Policy], transport: Transport) -> Handler:
    """Compose policies outermost first, the transport innermost."""
    handler: Handler = transport.send
    for policy in reversed(policies):
        handler = _bind(policy, handler)
    return handler


def _bind(policy: Policy, next: Handler) -> Handler:
    async def handle(request: Request) -> Response:
        return await policy.send(request, next)

    return handle


class AuthPolicy:
    """Adds ``Authorization: Bearer`` for the account's host only, and lets the provider
    refresh once after a 401."""

    def __init__(self, provider: AuthProvider, host: str) -> None:
        self._provider = provider
        self._host = host

    async def _with_token(self, request: Request) -> Request:
        token = await self._provider.token()
        return evolve(request, headers={**request.headers, "authorization": f"Bearer {token}"})

    async def send(self, request: Request, next: Handler) -> Response:
        if request.url.host != self._host:
            # The token belongs to one account; it never travels anywhere else.
            return await next(request)
        response = await next(await self._with_token(request))
        if response.status == 401 and await self._provider.on_unauthorized(request, response):
            response = await next(await self._with_token(request))
        return response


class LoggingPolicy:
    """Logs each request at DEBUG: method, path, status, duration. Never headers or bodies
    unless ``log_bodies`` (bodies hold business data, not secrets)."""

    def __init__(self, *, log_bodies: bool = False) -> None:
        self._log_bodies = log_bodies

    async def send(self, request: Request, next: Handler) -> Response:
        if not logger.isEnabledFor(logging.DEBUG):
            return await next(request)
        started = time.perf_counter()
        try:
            response = await next(request)
        except Exception as e:
            logger.debug(
                "%s %s failed after %.3fs: %s",
                request.method,
                request.url.path_qs,
                time.perf_counter() - started,
                type(e).__name__,
            )
            raise
        logger.debug(
            "%s %s -> %d in %.3fs",
            request.method,
            request.url.path_qs,
            response.status,
            time.perf_counter() - started,
        )
        if self._log_bodies:
            logger.debug("request body: %r; response body: %r", request.body, response.body[:2000])
        return response
