"""What one batch call comes to, position by position, and the check that stops the rest
of a batch once it is refused (see :mod:`amo_pipelines.resources.batch`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import (
    AmoError,
    BatchError,
    ForbiddenError,
    PaymentRequiredError,
    SkippedError,
    UnauthorizedError,
    UnknownOutcomeError,
    UnprocessableEntityError,
)

if TYPE_CHECKING:
    from ..http.chain import Handler
    from ..transport.base import Request, Response

R = TypeVar("R")

ACCOUNT_REFUSALS: tuple[type[AmoError], ...] = (
    UnauthorizedError,
    PaymentRequiredError,
    ForbiddenError,
)
"""Answers that refuse every request alike: the rest of a batch would be refused too."""
CREATE_REFUSALS = (*ACCOUNT_REFUSALS, UnprocessableEntityError)
"""For creates, a 422 is an account limit (pipelines per account, statuses per pipeline)."""


class Stop:
    """Whether (and why) a batch stopped: what its requests see through :data:`batch_call`.

    Not the :class:`Outcome` itself: a task or timer handle created while a chunk is sent
    (the rate limiter's pump, a sleeper, anything of the caller's) copies the context, and
    would keep the outcome's results, every created model, alive as long as it runs. In a
    copy to 20 accounts that kept ~18,000 statuses alive at any time, and the garbage
    collector's full passes over them were a fifth of the client's CPU.
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: AmoError | None = None


class Outcome(Generic[R]):
    """Results and errors by input position, and the failure that stopped the rest."""

    def __init__(self, size: int, refusals: tuple[type[AmoError], ...]) -> None:
        self.results: list[R | None] = [None] * size
        self.errors: dict[int, AmoError] = {}
        self.stopped = Stop()
        self._refusals = refusals

    @property
    def stop(self) -> AmoError | None:
        return self.stopped.error

    def fail(self, position: int, error: AmoError, *, stops: bool = False) -> None:
        self.errors[position] = error
        if self.stopped.error is None and (stops or isinstance(error, self._refusals)):
            self.stopped.error = error

    def result(self) -> list[R]:
        if not self.errors:
            return self.results  # type: ignore[return-value]
        causes = {id(e): e for e in self.errors.values() if not isinstance(e, SkippedError)}
        if len(causes) == 1 and len(self.errors) == len(self.results):
            [cause] = causes.values()
            if not cause.may_have_been_processed:
                raise cause  # one refusal, nothing written: the API error itself
        raise BatchError(self.results, self.errors)


def unknown_outcome(error: Exception) -> UnknownOutcomeError:
    failure = UnknownOutcomeError(
        f"failed with {type(error).__name__}: {error}; it may have been applied", cause=error
    )
    failure.__cause__ = error
    return failure


async def run_all(coroutines: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines concurrently and return when every one has finished.

    If the caller is cancelled, every one of them is cancelled and awaited before the
    cancellation goes on: nothing keeps running (or sending) behind a call that ended.
    """
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    if not tasks:
        return
    try:
        await asyncio.wait(tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        while not all(task.done() for task in tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(tasks)
        raise


batch_call: ContextVar[Stop | None] = ContextVar("amo_pipelines_batch", default=None)
"""Whether the batch call the current task sends a chunk (or a fan-out call) for stopped."""


class BatchStopPolicy:
    """Refuses a batch's request that got its rate-limit grant after the batch stopped.

    A batch stops when a request is refused for the whole account (or, for ordered chunks,
    when one fails): requests of the same batch still queued for a grant must then not go
    out. It sits just inside the throttle, so the check comes after the wait.
    """

    def wrap(self, next: Handler) -> Handler:
        """For :func:`~amo_pipelines.http.chain.chain`: no frame of its own per request."""
        current = batch_call.get

        def handler(request: Request) -> Awaitable[Response]:
            stopped = current()
            if stopped is not None and stopped.error is not None:
                return _skip(stopped.error)
            return next(request)

        return handler

    async def send(self, request: Request, next: Handler) -> Response:
        return await self.wrap(next)(request)  # chain() calls wrap() once instead


async def _skip(stop: AmoError) -> Response:
    raise SkippedError(stop)
