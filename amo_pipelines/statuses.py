"""``amo.statuses``: the five status endpoints of a pipeline."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._batch import assign_request_ids, in_input_order
from .constants import MAX_CUSTOM_STATUSES_PER_PIPELINE
from .converter import converter
from .errors import InvalidInputError, NotFoundError
from .inputs import NewStatus, StatusUpdate, check_batch, check_id
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
        data = await self._client.request_json("GET", path, query=query)
        if data is None:
            return []
        return builtins.list(converter.structure(data, StatusCollection).embedded.statuses)

    async def get(
        self, pipeline_id: int, status_id: int, *, with_descriptions: bool = False
    ) -> Status:
        path = status_path(pipeline_id, status_id)
        query = WITH_DESCRIPTIONS if with_descriptions else None
        data = await self._client.request_json("GET", path, query=query)
        if data is None:
            raise NotFoundError(status=204, method="GET", path=path, detail="Status not found")
        return converter.structure(data, Status)

    async def create(
        self, pipeline_id: int, statuses: Iterable[NewStatus]
    ) -> builtins.list[Status]:
        """Create statuses in one pipeline; returns them in input order."""
        path = statuses_path(pipeline_id)
        items = check_batch(statuses, NewStatus, MAX_CUSTOM_STATUSES_PER_PIPELINE, "statuses")
        request_ids = assign_request_ids(items)
        body = [
            {**converter.unstructure(item), "request_id": rid}
            for item, rid in zip(items, request_ids, strict=True)
        ]
        data = await self._client.request_json("POST", path, json=body)
        created = converter.structure(data or {}, StatusCollection).embedded.statuses
        return in_input_order(items, request_ids, created, method="POST", path=path)

    async def update(self, pipeline_id: int, status_id: int, update: StatusUpdate) -> Status:
        path = status_path(pipeline_id, status_id)
        if not isinstance(update, StatusUpdate):
            raise InvalidInputError("must be a StatusUpdate", field="update")
        data = await self._client.request_json("PATCH", path, json=converter.unstructure(update))
        return converter.structure(data, Status)

    async def delete(self, pipeline_id: int, status_id: int) -> None:
        """Delete a status; its leads move to the pipeline's first status."""
        await self._client.request("DELETE", status_path(pipeline_id, status_id))
