"""One create call over any number of items: chunks, then reconciling a chunk whose fate
is unknown (the algorithm is described in :mod:`amo_pipelines.resources.batch`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from ..errors import AmoError, GatewayTimeoutError, SkippedError
from ..model.inputs import NewPipeline, NewStatus
from ..model.models import Pipeline, Status, with_request_id
from ._outcome import CREATE_REFUSALS, Outcome, batch_call, run_all, unknown_outcome

if TYPE_CHECKING:
    from .batch import Batches

T = TypeVar("T", Pipeline, Status)
I = TypeVar("I", NewPipeline, NewStatus)  # noqa: E741


class Gate:
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


class Create(Generic[I, T]):
    """One create call over any number of items (see the module docstring)."""

    def __init__(
        self,
        batches: Batches,
        items: Sequence[I],
        request_ids: Sequence[str],
        bodies: Sequence[bytes],
        *,
        claimed: set[int],
        gate: Gate,
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
        self._outcome: Outcome[T] = Outcome(len(items), CREATE_REFUSALS)

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
            self._fail(positions, unknown_outcome(e))

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
        marker = batch_call.set(self._outcome.stopped)
        try:
            async with self._gate.send():
                return await self._send(
                    b"[" + b",".join(self._bodies[p] for p in positions) + b"]",
                    [self._request_ids[p] for p in positions],
                )
        finally:
            batch_call.reset(marker)

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
