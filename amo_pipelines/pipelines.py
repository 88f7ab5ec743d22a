"""``amo.pipelines``: the five pipeline endpoints."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._batch import assign_request_ids, in_input_order
from .constants import MAX_PIPELINES_PER_ACCOUNT
from .converter import converter
from .errors import InvalidInputError, NotFoundError
from .inputs import NewPipeline, PipelineUpdate, check_batch, check_id
from .models import Pipeline, PipelineCollection

if TYPE_CHECKING:
    from .client import AmoClient

PIPELINES = "/api/v4/leads/pipelines"


def pipeline_path(pipeline_id: int) -> str:
    return f"{PIPELINES}/{check_id(pipeline_id, 'pipeline_id')}"


class PipelinesAPI:
    def __init__(self, client: AmoClient) -> None:
        self._client = client

    async def list(self) -> builtins.list[Pipeline]:
        """Every pipeline of the account with its statuses (the API does not paginate)."""
        data = await self._client.request_json("GET", PIPELINES)
        if data is None:
            return []
        return builtins.list(converter.structure(data, PipelineCollection).embedded.pipelines)

    async def get(self, pipeline_id: int) -> Pipeline:
        path = pipeline_path(pipeline_id)
        data = await self._client.request_json("GET", path)
        if data is None:
            raise NotFoundError(status=204, method="GET", path=path, detail="Pipeline not found")
        return converter.structure(data, Pipeline)

    async def create(self, pipelines: Iterable[NewPipeline]) -> builtins.list[Pipeline]:
        """Create pipelines in one request; returns them in input order."""
        items = check_batch(pipelines, NewPipeline, MAX_PIPELINES_PER_ACCOUNT, "pipelines")
        request_ids = assign_request_ids(items)
        body = [
            {**converter.unstructure(item), "request_id": rid}
            for item, rid in zip(items, request_ids, strict=True)
        ]
        data = await self._client.request_json("POST", PIPELINES, json=body)
        created = converter.structure(data or {}, PipelineCollection).embedded.pipelines
        return in_input_order(items, request_ids, created, method="POST", path=PIPELINES)

    async def update(self, pipeline_id: int, update: PipelineUpdate) -> Pipeline:
        path = pipeline_path(pipeline_id)
        if not isinstance(update, PipelineUpdate):
            raise InvalidInputError("must be a PipelineUpdate", field="update")
        data = await self._client.request_json("PATCH", path, json=converter.unstructure(update))
        return converter.structure(data, Pipeline)

    async def delete(self, pipeline_id: int) -> None:
        """Delete a pipeline. The API refuses the last one and one that holds leads (422)."""
        await self._client.request("DELETE", pipeline_path(pipeline_id))
