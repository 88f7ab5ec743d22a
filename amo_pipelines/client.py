"""``AmoClient``: the entry point that owns the transport and the request pipeline."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from . import _json
from ._batch import OnAmbiguous, Watermarks
from .auth import TOKEN_PATH, AuthProvider, LongLivedToken, UsesTokenEndpoint
from .circuit import CircuitBreaker
from .clock import SYSTEM_CLOCK, Clock
from .constants import MAX_ITEMS_PER_REQUEST, RECOMMENDED_BATCH_SIZE
from .converter import converter
from .errors import (
    ClientClosedError,
    InvalidInputError,
    RequestNotSentError,
    UnexpectedResponseError,
    error_from_response,
)
from .models import Pipeline
from .pipelines import PipelinesAPI
from .policies import AuthPolicy, Handler, LoggingPolicy, Policy, chain, current_attempt
from .ratelimit import RateLimiter
from .retry import RetryPolicy
from .statuses import StatusesAPI
from .throttle import ThrottlePolicy
from .transport.aiohttp import AiohttpTransport
from .transport.base import Request, Response, Transport, sealed_headers
from .urls import account_url, check_path

USER_AGENT = "amo_pipelines/0.1"
# Sealed once: every request takes them as they are, without a copy.
_HEADERS = sealed_headers(
    {
        "accept": "application/hal+json, application/problem+json, application/json",
        "user-agent": USER_AGENT,
    }
)
_JSON_HEADERS = sealed_headers({**_HEADERS, "content-type": "application/json"})
T = TypeVar("T")


class _TokenEndpoint:
    """The client's route to its account's ``/oauth2/access_token`` for the auth provider.

    It goes through the client's transport and the DEBUG request log (never with bodies),
    but not through the retry, auth and throttle policies (see :mod:`amo_pipelines.auth`).
    Only a request that certainly was not sent is tried again, once, after the retry
    policy's backoff: resending a refresh that may have been processed would present a
    spent refresh token. (A request waiting for the token has its own retries on top.)
    """

    ATTEMPTS = 2

    def __init__(self, client: AmoClient) -> None:
        self.origin = client.base_url
        self.url = client.base_url.with_path(TOKEN_PATH)
        self._send: Handler = chain([LoggingPolicy()], client._transport)
        self._retry = client.retry
        self._clock = client.clock

    def __repr__(self) -> str:
        return f"TokenEndpoint({str(self.url)!r})"

    async def post(self, payload: Mapping[str, str]) -> Response:
        request = Request(
            method="POST",
            url=self.url,
            headers={
                "accept": "application/json",
                "content-type": "application/json",
                "user-agent": USER_AGENT,
            },
            body=_json.dumps(dict(payload)),
        )
        attempt = 1
        while True:
            marker = current_attempt.set(attempt)
            try:
                return await self._send(request)
            except RequestNotSentError:
                if attempt >= min(self.ATTEMPTS, self._retry.max_attempts):
                    raise
            finally:
                current_attempt.reset(marker)
            await self._clock.sleep(self._retry.backoff_for(attempt))
            attempt += 1


class AmoClient:
    """An async client for one amoCRM / Kommo account.

    Use it as ``async with AmoClient(...) as amo:`` or call :meth:`aclose` yourself.
    Exactly one of ``base_url`` / ``subdomain`` (with ``domain``) names the account, and
    exactly one of ``access_token`` / ``auth`` (e.g. :class:`~amo_pipelines.OAuth2`)
    authenticates. The token goes only to the account's origin; redirects are not followed.
    ``base_url`` must be https (http only to a loopback host, such as the emulator); for a
    host that came from outside (a webhook, an OAuth redirect's ``referer``) use
    :func:`~amo_pipelines.parse_account_host`, which admits amoCRM / Kommo hosts only.
    ``session`` borrows your :class:`aiohttp.ClientSession` (left open on close);
    ``transport`` replaces aiohttp altogether (e.g. :class:`amo_pipelines.testing.MockTransport`).

    Throughput and safety: ``rate_limiter`` and ``circuit_breaker`` default to instances
    shared by every client of the running event loop, so clients of one account share its
    budget; pass your own to scope them differently. ``retry`` decides what is retried
    (see :mod:`amo_pipelines.retry`); ``batch_size`` (1 to 250) and ``on_ambiguous``
    (``"reconcile"`` or ``"raise"``) shape batch creates. ``clock`` drives every wait.
    """

    def __init__(
        self,
        *,
        base_url: str | URL | None = None,
        subdomain: str | None = None,
        domain: str = "amocrm.ru",
        access_token: str | None = None,
        auth: AuthProvider | None = None,
        transport: Transport | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | float | None = None,
        log_bodies: bool = False,
        rate_limiter: RateLimiter | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = RECOMMENDED_BATCH_SIZE,
        on_ambiguous: OnAmbiguous = "reconcile",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.base_url = account_url(base_url=base_url, subdomain=subdomain, domain=domain)
        if (access_token is None) == (auth is None):
            raise InvalidInputError("give either access_token or auth", field="access_token")
        if auth is not None and not isinstance(auth, AuthProvider):
            raise InvalidInputError(
                "must be an AuthProvider, such as OAuth2 or LongLivedToken", field="auth"
            )
        self._auth: AuthProvider = auth or LongLivedToken(access_token)  # type: ignore[arg-type]
        if transport is not None and (session is not None or timeout is not None):
            raise InvalidInputError(
                "session and timeout configure the default transport; "
                "configure your own transport instead",
                field="transport",
            )
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(session=session, timeout=timeout)
        self._check_batch_options(batch_size, on_ambiguous)
        self.batch_size = batch_size
        self.on_ambiguous: OnAmbiguous = on_ambiguous
        self.clock = clock
        self.retry = retry or RetryPolicy(clock=clock)
        self.throttle = ThrottlePolicy(
            # The account's budget is keyed by its origin's host (and port, where one is
            # given: two emulators on 127.0.0.1 are two accounts).
            account=(
                self.base_url.host or ""
                if self.base_url.explicit_port is None
                else f"{self.base_url.host}:{self.base_url.explicit_port}"
            ),
            integration=self._auth.fingerprint,
            limiter=rate_limiter,
            breaker=circuit_breaker,
        )
        self.watermarks = Watermarks()
        self._seeding: asyncio.Future[list[Pipeline]] | None = None
        self._policies: list[Policy] = [
            self.retry,
            # Outside the throttle: waiting for a token refresh holds no rate-limit slot.
            AuthPolicy(self._auth, self.base_url),
            self.throttle,
            LoggingPolicy(log_bodies=log_bodies),
        ]
        self._handler = chain(self._policies, self._transport)
        self._token_endpoint: _TokenEndpoint | None = None
        if isinstance(self._auth, UsesTokenEndpoint):
            self._token_endpoint = _TokenEndpoint(self)
            self._auth.attach(self._token_endpoint)
        self._closed = False
        # The same few URLs come up again and again: reusing the URL object skips
        # rebuilding it and keeps the values yarl caches on it (host, origin, path and
        # query strings) warm for aiohttp.
        self._url = functools.lru_cache(maxsize=1024)(self._build_url)
        self.pipelines = PipelinesAPI(self)
        self.statuses = StatusesAPI(self)

    @staticmethod
    def _check_batch_options(batch_size: object, on_ambiguous: object) -> None:
        if (
            not isinstance(batch_size, int)
            or isinstance(batch_size, bool)
            or not 1 <= batch_size <= MAX_ITEMS_PER_REQUEST
        ):
            raise InvalidInputError(
                f"must be an int from 1 to {MAX_ITEMS_PER_REQUEST}", field="batch_size"
            )
        if on_ambiguous not in ("reconcile", "raise"):
            raise InvalidInputError('must be "reconcile" or "raise"', field="on_ambiguous")

    def batch_options(
        self, batch_size: int | None, on_ambiguous: OnAmbiguous | None
    ) -> dict[str, Any]:
        """Options for one batch call: the call's own, else the client's."""
        size = self.batch_size if batch_size is None else batch_size
        mode = self.on_ambiguous if on_ambiguous is None else on_ambiguous
        self._check_batch_options(size, mode)
        return {
            "batch_size": size,
            "on_ambiguous": mode,
            "max_rounds": self.retry.max_attempts,
            "pause": self._pause,
        }

    async def seed_watermarks(self) -> None:
        """Learn the highest pipeline and status ids once, for reconciling batch creates.

        One ``pipelines.list()`` embeds every status of the account (ids are unique and
        increasing account-wide), so concurrent creates into many pipelines share one read
        instead of listing each pipeline first.
        """
        if self.watermarks.pipeline is not None and self.watermarks.status is not None:
            return
        if self._seeding is None:
            self._seeding = asyncio.ensure_future(self.pipelines.list())
        task = self._seeding
        try:
            # Shielded: a cancelled caller must not cancel the read the others wait for.
            await asyncio.shield(task)
        finally:
            if task.done() and self._seeding is task:
                self._seeding = None

    async def _pause(self, round: int) -> None:
        await self.clock.sleep(self.retry.backoff_for(round))

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.throttle.limiter

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        return self.throttle.breaker

    def __repr__(self) -> str:
        return f"AmoClient({str(self.base_url)!r})"

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> AmoClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport if the client created it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._token_endpoint is not None and isinstance(self._auth, UsesTokenEndpoint):
            # A refresh in flight lands (and is saved) before the transport goes away.
            await self._auth.detach(self._token_endpoint)
        if self._owns_transport:
            await self._transport.aclose()

    def _build_url(self, path: str, query: Mapping[str, str] | Sequence[tuple[str, str]]) -> URL:
        url = self.base_url.with_path(check_path(path))
        return url.with_query(query) if query else url

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Response:
        """Send one request through the pipeline; return a 2xx response or raise
        the :class:`ApiError` subclass for the status."""
        if self._closed:
            raise ClientClosedError("this AmoClient is closed")
        headers = _HEADERS
        body = None
        if json is not None:
            body = _json.dumps(json)
            headers = _JSON_HEADERS
        try:
            url = self._url(path, tuple(query.items()) if query else ())
        except TypeError:  # an unhashable query value (a list of values): build it afresh
            url = self._build_url(path, query or ())
        request = Request(method=method, url=url, headers=headers, body=body)
        response = await self._handler(request)
        if 200 <= response.status < 300:
            return response
        raise error_from_response(request, response)

    async def fetch(
        self,
        method: str,
        path: str,
        model: type[T],
        *,
        query: Mapping[str, str] | None = None,
        json: Any = None,
        allow_empty: bool = False,
    ) -> T | None:
        """:meth:`request`, then parse the body into ``model``.

        An empty answer (204 or no body) is ``None`` where ``allow_empty``. Anything else
        that is not ``model`` in JSON (a proxy's HTML page, a body of the wrong shape) is
        :class:`UnexpectedResponseError`, never a stray parsing exception.
        """
        response = await self.request(method, path, query=query, json=json)
        if response.status == 204 or not response.body:
            if allow_empty:
                return None
            raise _unexpected(response, method, path, "expected a JSON body, got none")
        try:
            data = _json.loads(response.body)
        except (ValueError, UnicodeDecodeError) as e:
            kind = response.content_type or "no content type"
            raise _unexpected(response, method, path, f"expected JSON, got {kind}") from e
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return converter.structure(data, model)
        except Exception as e:
            detail = f"the body is not a {model.__name__}: {type(e).__name__}"
            raise _unexpected(response, method, path, detail) from e


def _unexpected(response: Response, method: str, path: str, detail: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        status=response.status,
        method=method,
        path=path,
        detail=detail,
        body=response.body,
        content_type=response.content_type,
    )
