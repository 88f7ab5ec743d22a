"""Batch calls: chunked creates that neither lose nor duplicate, and concurrent fan-out.

A create call is split into chunks of ``batch_size`` items, sent concurrently (the rate
limiter decides how fast). Each item carries a ``request_id`` (the caller's own, or its
index) so results map back to input positions whatever order the API answers in.

When a chunk fails ambiguously (a timeout, 500/502/504, a connection lost mid-response),
the chunk may or may not have been created, and resending it blindly could create every
item twice. Instead the chunk is *reconciled*: the entities are listed, and the chunk's
items are recognised among those created since the call began (ids above the call's
watermark, not claimed by another chunk) by name, in input order. Only the items not found
are sent again. A 504 also halves the rest, as the API's guidance says.

Chunks go out concurrently, except where order matters (``ordered``): the API renumbers a
pipeline's status ``sort`` against the statuses already there, so two chunks of statuses
for one pipeline arriving in either order would interleave. Those are sent one after the
other, in input order.

Ids grow monotonically in amoCRM, so "created since the call began" is "id above the
highest id the client had seen when the call began" (the watermark); a client that has
seen nothing reads it first with one ``pipelines.list()`` shared by all its concurrent
calls (``AmoClient.seed_watermarks``). Writes by another process into the same
pipeline at the same moment, with the same names, could be mistaken for ours; that is the
one case reconciliation cannot tell apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Literal, TypeVar

from attrs import evolve

from .errors import AmoError, BatchError, GatewayTimeoutError, UnexpectedResponseError
from .inputs import NewPipeline, NewStatus
from .models import Pipeline, Status

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


class BatchCreate(Generic[I, T]):
    """One create call over any number of items.

    ``send`` posts one chunk (with its request ids) and returns the created entities in
    chunk order; ``list_existing`` reads what exists now, for reconciliation.
    """

    def __init__(
        self,
        items: Sequence[I],
        *,
        send: Callable[[Sequence[I], Sequence[str]], Awaitable[list[T]]],
        list_existing: Callable[[], Awaitable[Sequence[T]]],
        watermark: int | None,
        batch_size: int,
        on_ambiguous: OnAmbiguous,
        max_rounds: int,
        pause: Callable[[int], Awaitable[None]],
        ordered: bool = False,
    ) -> None:
        self._items: Sequence[I] = items
        self._send: Callable[[Sequence[I], Sequence[str]], Awaitable[list[T]]] = send
        self._list_existing: Callable[[], Awaitable[Sequence[T]]] = list_existing
        self._watermark = watermark
        self._batch_size = batch_size
        self._on_ambiguous = on_ambiguous
        self._max_rounds = max_rounds
        self._pause = pause
        self._ordered = ordered
        self._request_ids = assign_request_ids(items)
        self._results: list[T | None] = [None] * len(items)
        self._errors: dict[int, AmoError] = {}

    async def run(self) -> list[T]:
        positions = list(range(len(self._items)))
        chunks = [
            positions[i : i + self._batch_size] for i in range(0, len(positions), self._batch_size)
        ]
        await self._run_all(chunks)
        if self._errors:
            raise BatchError(self._results, self._errors)
        return [r for r in self._results if r is not None]

    async def _run_all(self, chunks: list[list[int]]) -> None:
        if self._ordered:
            for chunk in chunks:
                await self._run_chunk(chunk)
        else:
            await asyncio.gather(*(self._run_chunk(chunk) for chunk in chunks))

    def _record(self, position: int, result: T) -> None:
        item = self._items[position]
        if result.request_id != item.request_id:
            result = evolve(result, request_id=item.request_id)  # show the caller's own id
        self._results[position] = result

    async def _run_chunk(self, positions: list[int]) -> None:
        rounds = 0
        while positions:
            try:
                created = await self._send(
                    [self._items[p] for p in positions],
                    [self._request_ids[p] for p in positions],
                )
            except AmoError as e:
                ambiguous = e.may_have_been_processed
                if not ambiguous or self._on_ambiguous == "raise" or rounds >= self._max_rounds:
                    self._errors.update(dict.fromkeys(positions, e))
                    return
                rounds += 1
                try:
                    positions = await self._reconcile(positions)
                except AmoError:
                    # Could not tell what was written: report the original failure,
                    # which says the items may have been created.
                    self._errors.update(dict.fromkeys(positions, e))
                    return
                if positions:
                    await self._pause(rounds)
                if isinstance(e, GatewayTimeoutError) and len(positions) > 1:
                    half = len(positions) // 2
                    await self._run_all([positions[:half], positions[half:]])
                    return
                continue
            for position, result in zip(positions, created, strict=True):
                self._record(position, result)
            return

    async def _reconcile(self, positions: list[int]) -> list[int]:
        """Record the chunk's items that exist now; return the positions still missing."""
        existing = await self._list_existing()
        claimed = {r.id for r in self._results if r is not None}
        floor = self._watermark or 0
        candidates = sorted(
            (r for r in existing if r.id > floor and r.id not in claimed), key=lambda r: r.id
        )
        missing: list[int] = []
        last_id = floor
        for position in positions:
            name = self._items[position].name
            match = next((r for r in candidates if r.id > last_id and r.name == name), None)
            if match is None:
                missing.append(position)
                continue
            last_id = match.id
            candidates.remove(match)
            self._record(position, match)
        return missing


async def fan_out(calls: Sequence[Callable[[], Awaitable[R]]]) -> list[R]:
    """Run independent calls concurrently; raise :class:`BatchError` if any failed."""

    async def attempt(call: Callable[[], Awaitable[R]]) -> R | AmoError:
        try:
            return await call()
        except AmoError as e:
            return e

    outcomes = await asyncio.gather(*(attempt(call) for call in calls))
    errors = {i: o for i, o in enumerate(outcomes) if isinstance(o, AmoError)}
    results = [None if isinstance(o, AmoError) else o for o in outcomes]
    if errors:
        raise BatchError(results, errors)
    return results  # type: ignore[return-value]


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
