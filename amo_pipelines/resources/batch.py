"""Batch calls: chunked creates that neither lose nor duplicate, and concurrent fan-out.

One :class:`Batches` per client owns everything about them (options, the ids seen, the
ids claimed, the reconcile gate); resources only say how to post a chunk, how to list
what exists and whether an entity is what an item asked for.

Creates
-------
A create call is split into chunks of ``batch_size`` items. Every item is encoded before
anything is sent, so input that cannot be sent fails the call with
:class:`InvalidInputError` naming the item, and nothing is written. Each item carries a
``request_id`` (the caller's own, or its index) so results map back to input positions.

The first chunk goes alone; the rest follow concurrently (the rate limiter decides how
fast), except where order matters (``ordered``: the API renumbers a pipeline's status
``sort`` against the statuses already there, so status chunks go one after the other).
A chunk refused as a whole (401, 402, 403, or a 422 account limit) stops the call: no
further chunk is sent, and if nothing was written that error itself is raised. Ordered
chunks stop at the first chunk that fails at all. Items never sent carry
:class:`SkippedError`.

A call returns or raises only after every chunk it started has finished; whatever fails in
a chunk becomes part of the outcome (:class:`BatchError`: ``results``, ``errors``,
``unknown``), and nothing is sent after the call has raised or was cancelled.

Reconciling an ambiguous failure
--------------------------------
A timeout, a 5xx or a connection lost mid-response leaves a chunk's fate unknown, and
resending it blindly could create every item twice. The chunk is *reconciled* instead:

1. The entities are listed at once. An item is recognised among those created since the
   call began (ids above the watermark: the highest id the client had seen when the call
   began) that no create of this client has claimed, by every field it sent that the API
   keeps as sent (name, color, descriptions, ``is_main``, ``is_unsorted_on``, the custom
   statuses of a pipeline; not ``sort``, which the API renumbers), in input order.
2. Items still missing are not resent yet: the server may still be processing the first
   copy. The call waits out the request's processing horizon (``reconcile_wait`` seconds
   after the failure; by default twice the transport's total timeout) and lists again.
3. Only items missing from both listings are sent again. A 504 also halves them, as the
   API's guidance says.

While a chunk is listed for reconciliation, no create of the same scope (the account's
pipelines, or one pipeline's statuses) is in flight from this client, so a same-named
entity that a concurrent call of the client is creating is never taken for this one.

What remains possible: a server that commits a write later than the horizon (the copy
sent again lands as well), and another process creating an entity with the very same
fields in the same scope during the call (it may be adopted as ours, and ours resent).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Hashable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ..errors import (
    AmoError,
    BatchError,
    ForbiddenError,
    GatewayTimeoutError,
    InvalidInputError,
    PaymentRequiredError,
    SkippedError,
    UnauthorizedError,
    UnexpectedResponseError,
    UnknownOutcomeError,
    UnprocessableEntityError,
)
from ..http.clock import Clock
from ..model import _json
from ..model.constants import MAX_ITEMS_PER_REQUEST
from ..model.converter import converter
from ..model.inputs import NewPipeline, NewStatus
from ..model.models import Pipeline, Status, with_request_id

if TYPE_CHECKING:
    from ..http.chain import Handler
    from ..transport.base import Request, Response

T = TypeVar("T", Pipeline, Status)
I = TypeVar("I", NewPipeline, NewStatus)  # noqa: E741
R = TypeVar("R")

OnAmbiguous = Literal["reconcile", "raise"]

ACCOUNT_REFUSALS: tuple[type[AmoError], ...] = (
    UnauthorizedError,
    PaymentRequiredError,
    ForbiddenError,
)
"""Answers that refuse every request alike: the rest of a batch would be refused too."""
CREATE_REFUSALS = (*ACCOUNT_REFUSALS, UnprocessableEntityError)
"""For creates, a 422 is an account limit (pipelines per account, statuses per pipeline)."""


def assign_request_ids(items: Sequence[NewPipeline | NewStatus]) -> list[str]:
    """The caller's own ``request_id`` where given, else the item's index (made unique).

    The index is also what the API echoes when none is sent, so a body the SDK builds for
    a caller who set no ids reads just like one the API documents.
    """
    taken = {item.request_id for item in items if item.request_id is not None}
    ids: list[str] = []
    for i, item in enumerate(items):
        if item.request_id is not None:
            ids.append(item.request_id)
            continue
        candidate, n = str(i), 0
        while candidate in taken:
            n += 1
            candidate = f"{i}~{n}"
        taken.add(candidate)
        ids.append(candidate)
    return ids


def in_request_order(
    request_ids: Sequence[str], results: Sequence[T], *, method: str, path: str
) -> list[T]:
    """Order one response's ``results`` like the request, by the echoed request_id."""
    by_id = {r.request_id: r for r in results if r.request_id is not None}
    if len(by_id) == len(results) == len(request_ids) and all(rid in by_id for rid in request_ids):
        return [by_id[rid] for rid in request_ids]
    if not by_id and len(results) == len(request_ids):
        return list(results)  # no echo at all: the API answers in request order
    raise UnexpectedResponseError(
        status=200,
        method=method,
        path=path,
        detail=(
            f"sent {len(request_ids)} items; the response holds {len(results)} whose "
            f"request_id echoes do not match the request"
        ),
    )


def encode_json(value: object, where: str) -> bytes:
    """``value`` as a JSON body, or :class:`InvalidInputError` naming ``where``."""
    try:
        return _json.dumps(value)
    except (TypeError, ValueError) as e:  # orjson: lone surrogates, ints beyond 64 bits
        raise InvalidInputError(f"cannot be sent as JSON ({e})", field=where) from e


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


_batch_call: ContextVar[_Outcome[Any] | None] = ContextVar("amo_pipelines_batch", default=None)
"""The batch call the current task is sending a chunk (or a fan-out call) for."""


class BatchStopPolicy:
    """Refuses a batch's request that got its rate-limit grant after the batch stopped.

    A batch stops when a request is refused for the whole account (or, for ordered chunks,
    when one fails): requests of the same batch still queued for a grant must then not go
    out. It sits just inside the throttle, so the check comes after the wait.
    """

    def wrap(self, next: Handler) -> Handler:
        """For :func:`~amo_pipelines.http.chain.chain`: no frame of its own per request."""
        current = _batch_call.get

        def handler(request: Request) -> Awaitable[Response]:
            call = current()
            if call is not None and call.stop is not None:
                return _skip(call.stop)
            return next(request)

        return handler

    async def send(self, request: Request, next: Handler) -> Response:
        return await self.wrap(next)(request)  # chain() calls wrap() once instead


async def _skip(stop: AmoError) -> Response:
    raise SkippedError(stop)


class _Gate:
    """Per scope: any number of sends at once, or one reconciliation listing alone."""

    def __init__(self) -> None:
        self._sends = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._reconciling = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def send(self) -> AsyncIterator[None]:
        while self._reconciling.locked():
            async with self._reconciling:
                pass  # wait for the listing to end; no await between check and count
        self._sends += 1
        self._drained.clear()
        try:
            yield
        finally:
            self._sends -= 1
            if not self._sends:
                self._drained.set()

    @contextlib.asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        async with self._reconciling:
            await self._drained.wait()
            yield


class Watermarks:
    """The highest pipeline and status ids a client has seen, for reconciliation."""

    def __init__(self) -> None:
        self.pipeline: int | None = None
        self.status: int | None = None

    def see_pipelines(self, pipelines: Sequence[Pipeline]) -> None:
        for pipeline in pipelines:
            if self.pipeline is None or pipeline.id > self.pipeline:
                self.pipeline = pipeline.id
            self.see_statuses(pipeline.statuses)

    def see_statuses(self, statuses: Sequence[Status]) -> None:
        if statuses:
            top = max([s.id for s in statuses])
            if self.status is None or top > self.status:
                self.status = top


def check_batch_options(batch_size: object, on_ambiguous: object) -> None:
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


class Batches:
    """A client's batch calls: their options and the state they share."""

    def __init__(
        self,
        *,
        batch_size: int,
        on_ambiguous: OnAmbiguous,
        reconcile_wait: float,
        max_rounds: int,
        backoff: Callable[[int], float],
        clock: Clock,
        list_pipelines: Callable[[], Awaitable[Sequence[Pipeline]]],
    ) -> None:
        check_batch_options(batch_size, on_ambiguous)
        self.batch_size = batch_size
        self.on_ambiguous: OnAmbiguous = on_ambiguous
        self.reconcile_wait = reconcile_wait
        self.max_rounds = max_rounds
        self.backoff = backoff
        self.clock = clock
        self.watermarks = Watermarks()
        self._list_pipelines = list_pipelines
        self._seeding: asyncio.Future[Sequence[Pipeline]] | None = None
        self._gates: dict[Hashable, _Gate] = {}
        # Ids that a create call of this client recorded, per entity kind; only calls in
        # flight need them (a finished call's ids are below every later watermark).
        self._claimed: dict[str, set[int]] = {"pipeline": set(), "status": set()}
        self._active = 0

    def gate(self, scope: Hashable) -> _Gate:
        gate = self._gates.get(scope)
        if gate is None:
            gate = self._gates[scope] = _Gate()
        return gate

    async def seed_watermarks(self) -> None:
        """Learn the highest pipeline and status ids once, for reconciling batch creates.

        One ``pipelines.list()`` embeds every status of the account (ids are unique and
        increasing account-wide), so concurrent creates into many pipelines share one read
        instead of listing each pipeline first.
        """
        if self.watermarks.pipeline is not None and self.watermarks.status is not None:
            return
        if self._seeding is None:
            self._seeding = asyncio.ensure_future(self._list_pipelines())
        task = self._seeding
        try:
            # Shielded: a cancelled caller must not cancel the read the others wait for.
            await asyncio.shield(task)
        finally:
            if task.done() and self._seeding is task:
                self._seeding = None

    async def create(
        self,
        items: Sequence[I],
        *,
        kind: Literal["pipeline", "status"],
        scope: Hashable,
        where: str,
        send: Callable[[bytes, Sequence[str]], Awaitable[list[T]]],
        list_existing: Callable[[], Awaitable[Sequence[T]]],
        matches: Callable[[I, T], bool],
        ordered: bool = False,
        batch_size: int | None = None,
        on_ambiguous: OnAmbiguous | None = None,
    ) -> list[T]:
        size = self.batch_size if batch_size is None else batch_size
        mode = self.on_ambiguous if on_ambiguous is None else on_ambiguous
        check_batch_options(size, mode)
        request_ids = assign_request_ids(items)
        bodies = [
            encode_json({**converter.unstructure(item), "request_id": rid}, f"{where}[{i}]")
            for i, (item, rid) in enumerate(zip(items, request_ids, strict=True))
        ]
        if mode == "reconcile":
            await self.seed_watermarks()
        watermark = self.watermarks.pipeline if kind == "pipeline" else self.watermarks.status
        call = _Create(
            self,
            items,
            request_ids,
            bodies,
            claimed=self._claimed[kind],
            gate=self.gate(scope),
            send=send,
            list_existing=list_existing,
            matches=matches,
            watermark=watermark or 0,
            reconcile=mode == "reconcile",
            ordered=ordered,
        )
        self._active += 1
        try:
            return await call.run(size)
        finally:
            self._active -= 1
            if not self._active:
                for claimed in self._claimed.values():
                    claimed.clear()

    async def fan_out(self, calls: Sequence[Callable[[], Awaitable[R]]]) -> list[R]:
        """Run independent calls concurrently; results in input order.

        The first call goes alone: a refusal of the whole account (401, 402, 403) stops the
        rest before they are sent. If nothing succeeded because of such a refusal, it is
        raised itself; any other failure gives :class:`BatchError`.
        """
        outcome: _Outcome[R] = _Outcome(len(calls), ACCOUNT_REFUSALS)

        async def attempt(i: int) -> None:
            if outcome.stop is not None:
                outcome.fail(i, SkippedError(outcome.stop))
                return
            marker = _batch_call.set(outcome)
            try:
                outcome.results[i] = await calls[i]()
            except AmoError as e:
                outcome.fail(i, e)
            except Exception as e:
                outcome.fail(i, _unknown(e))
            finally:
                _batch_call.reset(marker)

        if calls:
            await attempt(0)
            await run_all([attempt(i) for i in range(1, len(calls))])
        return outcome.result()


def _unknown(error: Exception) -> UnknownOutcomeError:
    failure = UnknownOutcomeError(
        f"failed with {type(error).__name__}: {error}; it may have been applied", cause=error
    )
    failure.__cause__ = error
    return failure


class _Outcome(Generic[R]):
    """Results and errors by input position, and the failure that stopped the rest."""

    def __init__(self, size: int, refusals: tuple[type[AmoError], ...]) -> None:
        self.results: list[R | None] = [None] * size
        self.errors: dict[int, AmoError] = {}
        self.stop: AmoError | None = None
        self._refusals = refusals

    def fail(self, position: int, error: AmoError, *, stops: bool = False) -> None:
        self.errors[position] = error
        if self.stop is None and (stops or isinstance(error, self._refusals)):
            self.stop = error

    def result(self) -> list[R]:
        if not self.errors:
            return self.results  # type: ignore[return-value]
        causes = {id(e): e for e in self.errors.values() if not isinstance(e, SkippedError)}
        if len(causes) == 1 and len(self.errors) == len(self.results):
            [cause] = causes.values()
            if not cause.may_have_been_processed:
                raise cause  # one refusal, nothing written: the API error itself
        raise BatchError(self.results, self.errors)


class _Create(Generic[I, T]):
    """One create call over any number of items (see the module docstring)."""

    def __init__(
        self,
        batches: Batches,
        items: Sequence[I],
        request_ids: Sequence[str],
        bodies: Sequence[bytes],
        *,
        claimed: set[int],
        gate: _Gate,
        send: Callable[[bytes, Sequence[str]], Awaitable[list[T]]],
        list_existing: Callable[[], Awaitable[Sequence[T]]],
        matches: Callable[[I, T], bool],
        watermark: int,
        reconcile: bool,
        ordered: bool,
    ) -> None:
        self._batches = batches
        self._items: Sequence[I] = items
        self._request_ids = request_ids
        self._bodies = bodies
        self._claimed = claimed
        self._gate = gate
        self._send: Callable[[bytes, Sequence[str]], Awaitable[list[T]]] = send
        self._list_existing: Callable[[], Awaitable[Sequence[T]]] = list_existing
        self._matches: Callable[[I, T], bool] = matches
        self._watermark = watermark
        self._reconcile_on = reconcile
        self._ordered = ordered
        self._outcome: _Outcome[T] = _Outcome(len(items), CREATE_REFUSALS)

    async def run(self, batch_size: int) -> list[T]:
        positions = list(range(len(self._items)))
        chunks = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
        await self._chunk(chunks[0])
        await self._run_all(chunks[1:])
        return self._outcome.result()

    async def _run_all(self, chunks: list[list[int]]) -> None:
        if self._ordered:
            for chunk in chunks:
                await self._chunk(chunk)
        else:
            await run_all([self._chunk(chunk) for chunk in chunks])

    def _fail(self, positions: Sequence[int], error: AmoError) -> None:
        for position in positions:
            if self._outcome.results[position] is None:
                self._outcome.fail(position, error, stops=self._ordered)

    async def _chunk(self, positions: list[int]) -> None:
        if self._outcome.stop is not None:
            skipped = SkippedError(self._outcome.stop)
            for position in positions:
                self._outcome.errors[position] = skipped
            return
        try:
            await self._attempts(positions)
        except AmoError as e:
            self._fail(positions, e)
        except Exception as e:
            self._fail(positions, _unknown(e))

    async def _attempts(self, positions: list[int]) -> None:
        rounds = 0
        while positions:
            if rounds and self._outcome.stop is not None:
                raise SkippedError(self._outcome.stop)  # another chunk was refused meanwhile
            try:
                created = await self._post(positions)
            except AmoError as e:
                if (
                    not e.may_have_been_processed
                    or not self._reconcile_on
                    or rounds >= self._batches.max_rounds
                ):
                    raise
                rounds += 1
                failed_at = self._batches.clock.now()
                try:
                    positions = await self._reconcile(positions, failed_at)
                except AmoError:
                    # Could not tell what was written: report the original failure,
                    # which says the items may have been created.
                    raise e from None
                if positions:
                    await self._batches.clock.sleep(self._batches.backoff(rounds))
                if isinstance(e, GatewayTimeoutError) and len(positions) > 1:
                    half = len(positions) // 2
                    await self._run_all([positions[:half], positions[half:]])
                    return
                continue
            for position, result in zip(positions, created, strict=True):
                self._record(position, result)
            return

    async def _post(self, positions: list[int]) -> list[T]:
        marker = _batch_call.set(self._outcome)
        try:
            async with self._gate.send():
                return await self._send(
                    b"[" + b",".join(self._bodies[p] for p in positions) + b"]",
                    [self._request_ids[p] for p in positions],
                )
        finally:
            _batch_call.reset(marker)

    def _record(self, position: int, result: T) -> None:
        item = self._items[position]
        if result.request_id != item.request_id:
            result = with_request_id(result, item.request_id)  # show the caller's own id
        self._outcome.results[position] = result
        self._claimed.add(result.id)

    async def _reconcile(self, positions: list[int], failed_at: float) -> list[int]:
        """Record the chunk's items that exist; return those missing both before and after
        the processing horizon."""
        missing = await self._adopt(positions)
        if missing:
            clock = self._batches.clock
            await clock.sleep(max(0.0, failed_at + self._batches.reconcile_wait - clock.now()))
            missing = await self._adopt(missing)
        return missing

    async def _adopt(self, positions: list[int]) -> list[int]:
        async with self._gate.alone():
            existing = await self._list_existing()
            candidates = sorted(
                (r for r in existing if r.id > self._watermark and r.id not in self._claimed),
                key=lambda r: r.id,
            )
            missing: list[int] = []
            last_id = self._watermark
            for position in positions:
                item = self._items[position]
                match = next(
                    (r for r in candidates if r.id > last_id and self._matches(item, r)), None
                )
                if match is None:
                    missing.append(position)
                    continue
                last_id = match.id
                candidates.remove(match)
                self._record(position, match)
            return missing
