"""The account guard: rate limits, 429 back-off and the circuit breaker, per account.

Every request waits for a slot from the :class:`~amo_pipelines.ratelimit.RateLimiter`
(both the integration's and the account's budget, plus an in-flight place), and the
outcome feeds back:

* 429: the whole account pauses for ``retry_after`` (body or ``Retry-After`` header;
  a default when the server gave none; never longer than ``max_pause``), and its rate is
  cut, to recover gradually. The retry policy then sends the request again.
* a block (HTML 403, or a 403 soon after a 429): the circuit opens; pending and new calls
  fail at once with :class:`AccountBlockedError`, and nothing more is sent.
"""

from __future__ import annotations

from .circuit import CircuitBreaker, shared_breaker
from .errors import ApiError, RateLimitedError, error_from_response
from .policies import Handler
from .ratelimit import RateLimiter, shared_limiter
from .transport.base import Request, Response


class _CircuitOpened(Exception):
    """Raised into requests still queued at the limiter when their account gets blocked."""


class ThrottlePolicy:
    def __init__(
        self,
        *,
        account: str,
        integration: str,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        default_pause: float = 1.0,
        max_pause: float = 60.0,
    ) -> None:
        self.account = account
        self._integration = integration
        self._limiter = limiter
        self._breaker = breaker
        self.default_pause = default_pause
        self.max_pause = max_pause

    @property
    def limiter(self) -> RateLimiter:
        # Resolved on first use: the shared instances belong to the running event loop.
        if self._limiter is None:
            self._limiter = shared_limiter()
        return self._limiter

    @property
    def breaker(self) -> CircuitBreaker:
        if self._breaker is None:
            self._breaker = shared_breaker()
        return self._breaker

    async def send(self, request: Request, next: Handler) -> Response:
        breaker, limiter = self.breaker, self.limiter
        breaker.check(self.account, request)
        try:
            # limiter.slot() without the context manager's frames (every request is here)
            held, grant = await limiter._acquire(self.account, self._integration)
        except _CircuitOpened:
            raise breaker.refusal(self.account, request) from None
        try:
            # The circuit may have opened while this request waited for its slot.
            breaker.check(self.account, request)
            response = await next(request)
        finally:
            await limiter._finish(held, grant)
        if response.status == 429:
            error = error_from_response(request, response)
            assert isinstance(error, RateLimitedError)
            pause = error.retry_after if error.retry_after is not None else self.default_pause
            limiter.pause(self.account, min(self.max_pause, pause))
            limiter.penalize(self.account)
            breaker.record_429(self.account)
        elif response.status == 403:
            error = error_from_response(request, response)
            if breaker.is_block(self.account, error):
                self._open(error)
        return response

    def _open(self, cause: ApiError) -> None:
        self.breaker.open(self.account, cause)
        self.limiter.abort_waiters(self.account, _CircuitOpened())
