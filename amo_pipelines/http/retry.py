"""When to try a request again, and how long to wait first.

A request may be retried only when a second copy cannot do harm:

* GET, PATCH and DELETE are idempotent here: retried on 429, 5xx, lost connections and
  timeouts. (A DELETE whose first copy was processed answers 404 the second time; the
  client treats that 404 as success.) A request built with ``idempotent=False`` (a
  status PATCH that creates or deletes descriptions) is treated like a POST instead.
* POST creates entities. It is retried only when the first copy certainly was not
  processed: a 429, or a connection that never carried the request. After an ambiguous
  failure (5xx, timeout, connection lost mid-response) the error goes up to the batch
  layer, which reconciles against what now exists instead of resending blindly.

The decision lives in :meth:`RetryPolicy.delay_for`, a keyword-only hook that a subclass
may override; the clock and the random source are injected so tests run on a fake clock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection

from ..errors import (
    AmoError,
    ClientClosedError,
    InvalidInputError,
    RequestNotSentError,
    ResponseTooLargeError,
    TransportError,
)
from ..transport.base import Request, Response
from .chain import CloseGate, Handler, current_attempt
from .clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger("amo_pipelines")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PATCH", "DELETE", "PUT", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RetryPolicy:
    """Retries with exponential backoff and full jitter, capped.

    ``max_attempts`` counts the first try. A 429 is retried after the rate limiter's
    account pause (which the 429 triggered) rather than a backoff of its own.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        statuses: Collection[int] = RETRY_STATUSES,
        retry_transport_errors: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise InvalidInputError("must be at least 1", field="max_attempts")
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.statuses = frozenset(statuses)
        self.retry_transport_errors = retry_transport_errors
        self._clock = clock
        self._random = random_source

    @property
    def clock(self) -> Clock:
        """What the backoff waits on when the policy runs on its own; a client's chain
        waits on the client's clock instead."""
        return self._clock

    def backoff_for(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return ceiling * self._random()

    def delay_for(
        self,
        *,
        request: Request,
        attempt: int,
        response: Response | None = None,
        error: BaseException | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` not to retry.

        Asked after every failed attempt: an error, or a response that is not a 2xx.
        """
        if attempt >= self.max_attempts:
            return None
        idempotent = request.idempotent
        if idempotent is None:
            idempotent = request.method in IDEMPOTENT_METHODS
        if response is not None:
            if response.status not in self.statuses:
                return None
            if response.status == 429:
                return 0.0  # the limiter already paused the account for retry_after
            return self.backoff_for(attempt) if idempotent else None
        if isinstance(error, RequestNotSentError):
            return self.backoff_for(attempt) if self.retry_transport_errors else None
        if isinstance(error, ResponseTooLargeError):
            return None  # the same answer again would be just as large
        if isinstance(error, TransportError) and idempotent and self.retry_transport_errors:
            return self.backoff_for(attempt)
        return None

    async def send(
        self,
        request: Request,
        next: Handler,
        *,
        gate: CloseGate | None = None,
        clock: Clock | None = None,
        first: Response | AmoError | None = None,
    ) -> Response:
        """Send ``request`` through ``next``, again as :meth:`delay_for` says. ``gate``: the
        client's; once it closes, nothing is retried and the backoff ends at once, with
        :class:`ClientClosedError` (only outcomes that were to be retried, so harmless to
        send again, are replaced by it). ``clock``: what the backoff waits on (default:
        the policy's own). ``first``: the first attempt's outcome, when the caller sent
        it itself (the client does, see :mod:`amo_pipelines.http.build`): it is judged as
        if ``next`` had returned or raised it."""
        clock = self._clock if clock is None else clock
        attempt = 1
        maybe_done = False  # an earlier attempt may have been processed
        while True:
            marker = current_attempt.set(attempt)  # for the DEBUG request log
            try:
                if first is None:
                    response = await next(request)
                elif isinstance(first, Response):
                    response, first = first, None
                else:
                    thrown, first = first, None
                    raise thrown
            except AmoError as e:
                if isinstance(e, ClientClosedError):
                    raise
                delay = self.delay_for(request=request, attempt=attempt, error=e)
                if delay is None:
                    raise
                maybe_done = maybe_done or e.may_have_been_processed
                outcome = type(e).__name__
                failure: AmoError | None = e
            else:
                if response.status < 300:
                    return response  # a success is final: no hook is asked to retry it
                if maybe_done and request.method == "DELETE" and response.status == 404:
                    # The first copy deleted it; the entity is gone, as asked.
                    return Response(status=204)
                delay = self.delay_for(request=request, attempt=attempt, response=response)
                if delay is None:
                    return response
                maybe_done = maybe_done or response.status >= 500
                outcome = str(response.status)
                failure = None
            finally:
                current_attempt.reset(marker)
            logger.debug(
                "%s %s attempt %d: %s, retrying in %.2fs",
                request.method,
                request.url.path,
                attempt,
                outcome,
                delay,
            )
            if gate is None:
                await clock.sleep(delay)
            else:
                await gate.sleep(clock, delay)
                if gate.closed:
                    raise self._closed(request, attempt, outcome, failure)
            attempt += 1

    def _closed(
        self, request: Request, attempt: int, outcome: str, failure: AmoError | None
    ) -> BaseException:
        """What a call gets when its client closed during the backoff (``failure``: the
        outcome that was to be retried, if an exception)."""
        error = ClientClosedError(
            f"the AmoClient was closed: {request.method} {request.url.path} was "
            f"not sent again (attempt {attempt}: {outcome})"
        )
        error.__cause__ = failure  # as ``raise error from failure``
        error.__suppress_context__ = True
        return error


NO_RETRY = RetryPolicy(max_attempts=1)
"""Send every request exactly once."""


class NotSentOnly(RetryPolicy):
    """The token endpoint's retry: only a request that certainly was not sent
    (:class:`RequestNotSentError`) is tried again, once, after ``retry``'s backoff.

    Resending a refresh that may have been processed would present a spent refresh token,
    so nothing else is retried (a request waiting for the token has its own retries on
    top). A client closing during the backoff ends it with the not-sent failure itself.
    """

    ATTEMPTS = 2

    def __init__(self, retry: RetryPolicy) -> None:
        super().__init__(max_attempts=min(self.ATTEMPTS, retry.max_attempts), clock=retry.clock)
        self._base = retry

    def backoff_for(self, attempt: int) -> float:
        return self._base.backoff_for(attempt)

    def delay_for(
        self,
        *,
        request: Request,
        attempt: int,
        response: Response | None = None,
        error: BaseException | None = None,
    ) -> float | None:
        if attempt >= self.max_attempts or not isinstance(error, RequestNotSentError):
            return None
        return self.backoff_for(attempt)

    def _closed(
        self, request: Request, attempt: int, outcome: str, failure: AmoError | None
    ) -> BaseException:
        assert failure is not None  # only a RequestNotSentError is retried
        return failure
