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
from collections.abc import Awaitable, Callable, Hashable, Sequence
from operator import attrgetter
from typing import Literal, TypeVar

from ..errors import (
    AmoError,
    InvalidInputError,
    SkippedError,
    UnexpectedResponseError,
)
from ..http.clock import Clock
from ..model import _json
from ..model.constants import MAX_ITEMS_PER_REQUEST
from ..model.converter import converter
from ..model.inputs import NewPipeline, NewStatus
from ..model.models import Pipeline, Status
from ._create import Create, Gate
from ._outcome import (
    ACCOUNT_REFUSALS,
    CREATE_REFUSALS,
    BatchStopPolicy,
    Outcome,
    batch_call,
    run_all,
    unknown_outcome,
)

__all__ = [
    "ACCOUNT_REFUSALS",
    "CREATE_REFUSALS",
    "BatchStopPolicy",
    "Batches",
    "OnAmbiguous",
    "Watermarks",
    "assign_request_ids",
    "check_batch_options",
    "encode_json",
    "in_request_order",
    "run_all",
]

T = TypeVar("T", Pipeline, Status)
I = TypeVar("I", NewPipeline, NewStatus)  # noqa: E741
R = TypeVar("R")

OnAmbiguous = Literal["reconcile", "raise"]


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


_ID = attrgetter("id")


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
            top = max(map(_ID, statuses))  # (every read passes here: no Python loop)
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
        self._gates: dict[Hashable, Gate] = {}
        # Ids that a create call of this client recorded, per entity kind; only calls in
        # flight need them (a finished call's ids are below every later watermark).
        self._claimed: dict[str, set[int]] = {"pipeline": set(), "status": set()}
        self._active = 0

    def gate(self, scope: Hashable) -> Gate:
        gate = self._gates.get(scope)
        if gate is None:
            gate = self._gates[scope] = Gate()
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
        call = Create(
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
        outcome: Outcome[R] = Outcome(len(calls), ACCOUNT_REFUSALS)

        async def attempt(i: int) -> None:
            if outcome.stop is not None:
                outcome.fail(i, SkippedError(outcome.stop))
                return
            marker = batch_call.set(outcome.stopped)
            try:
                outcome.results[i] = await calls[i]()
            except AmoError as e:
                outcome.fail(i, e)
            except Exception as e:
                outcome.fail(i, unknown_outcome(e))
            finally:
                batch_call.reset(marker)

        if calls:
            await attempt(0)
            await run_all([attempt(i) for i in range(1, len(calls))])
        return outcome.result()
