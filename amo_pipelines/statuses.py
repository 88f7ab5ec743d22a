"""``amo.statuses``: the five status endpoints of a pipeline, plus batch update and delete."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from ._batch import BatchCreate, OnAmbiguous, fan_out, in_request_order
from .constants import MAX_CUSTOM_STATUSES_PER_PIPELINE
from .converter import converter
from .errors import InvalidInputError, NotFoundError
from .inputs import NewStatus, StatusUpdate, check_batch, check_id, check_updates
from .models import Status, StatusCollection
from .pipelines import pipeline_path

if TYPE_CHECKING:
    from .client import AmoClient

WITH_DESCRIPTIONS = {"with": "descriptions"}


def statuses_path(pipeline_id: int) -> str:
    return f"{pipeline_path(pipeline_id)}/statuses"


def status_path(pipeline_id: int, status_id: int) -> str:
    return f"{statuses_path(pipeline_id)}/{check_id(status_id, 'status_id')}"


class StatusesAPI:
    def __init__(self, client: AmoClient) -> None:
        self._client = client

    async def list(
        self, pipeline_id: int, *, with_descriptions: bool = False
    ) -> builtins.list[Status]:
        path = statuses_path(pipeline_id)
        query = WITH_DESCRIPTIONS if with_descriptions else None
        page = await self._client.fetch(
            "GET", path, StatusCollection, query=query, allow_empty=True
        )
        if page is None:
            return []
        self._client.watermarks.see_statuses(page.embedded.statuses)
        return builtins.list(page.embedded.statuses)

    async def get(
        self, pipeline_id: int, status_id: int, *, with_descriptions: bool = False
    ) -> Status:
        path = status_path(pipeline_id, status_id)
        query = WITH_DESCRIPTIONS if with_descriptions else None
        status = await self._client.fetch("GET", path, Status, query=query, allow_empty=True)
        if status is None:
            raise NotFoundError(status=204, method="GET", path=path, detail="Status not found")
        return status

    async def create(
        self,
        pipeline_id: int,
        statuses: Iterable[NewStatus],
        *,
        batch_size: int | None = None,
        on_ambiguous: OnAmbiguous | None = None,
    ) -> builtins.list[Status]:
        """Create statuses in one pipeline; returns them in input order.

        Chunking, reconciliation and :class:`BatchError` work as for
        :meth:`PipelinesAPI.create`.
        """
        path = statuses_path(pipeline_id)
        items = check_batch(statuses, NewStatus, MAX_CUSTOM_STATUSES_PER_PIPELINE, "statuses")
        options = self._client.batch_options(batch_size, on_ambiguous)
        if options["on_ambiguous"] == "reconcile":
            await self._client.seed_watermarks()

        async def send(chunk: Sequence[NewStatus], request_ids: Sequence[str]) -> list[Status]:
            body = [
                {**converter.unstructure(item), "request_id": rid}
                for item, rid in zip(chunk, request_ids, strict=True)
            ]
            page = await self._client.fetch("POST", path, StatusCollection, json=body)
            assert page is not None
            created = page.embedded.statuses
            self._client.watermarks.see_statuses(created)
            return in_request_order(request_ids, created, method="POST", path=path)

        async def list_existing() -> list[Status]:
            # with=descriptions: a reconciled status comes back as complete as a created one.
            found = await self.list(pipeline_id, with_descriptions=True)
            return [s for s in found if not s.is_system]

        return await BatchCreate(
            items,
            send=send,
            list_existing=list_existing,
            watermark=self._client.watermarks.status,
            ordered=True,  # sort is relative to what exists: chunks must land in order
            **options,
        ).run()

    async def update(self, pipeline_id: int, status_id: int, update: StatusUpdate) -> Status:
        path = status_path(pipeline_id, status_id)
        if not isinstance(update, StatusUpdate):
            raise InvalidInputError("must be a StatusUpdate", field="update")
        body = converter.unstructure(update)
        status = await self._client.fetch("PATCH", path, Status, json=body)
        assert status is not None
        return status

    async def update_many(
        self,
        pipeline_id: int,
        updates: Mapping[int, StatusUpdate] | Iterable[tuple[int, StatusUpdate]],
    ) -> builtins.list[Status]:
        """PATCH several statuses of one pipeline concurrently; results in input order,
        or :class:`BatchError` with what was and was not changed."""
        statuses_path(pipeline_id)
        pairs = check_updates(updates, StatusUpdate, "status_id")
        return await fan_out([partial(self.update, pipeline_id, s, u) for s, u in pairs])

    async def delete(self, pipeline_id: int, status_id: int) -> None:
        """Delete a status; its leads move to the pipeline's first status."""
        await self._client.request("DELETE", status_path(pipeline_id, status_id))

    async def delete_many(self, pipeline_id: int, status_ids: Iterable[int]) -> None:
        """DELETE several statuses of one pipeline concurrently; :class:`BatchError` on
        any failure."""
        statuses_path(pipeline_id)
        ids = [check_id(s, f"status_ids[{i}]") for i, s in enumerate(status_ids)]
        await fan_out([partial(self.delete, pipeline_id, s) for s in ids])
