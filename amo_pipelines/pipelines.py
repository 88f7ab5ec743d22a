"""``amo.pipelines``: the five pipeline endpoints, plus batch update and delete."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from ._batch import BatchCreate, OnAmbiguous, fan_out, in_request_order
from .constants import MAX_PIPELINES_PER_ACCOUNT
from .converter import converter
from .errors import InvalidInputError, NotFoundError
from .inputs import NewPipeline, PipelineUpdate, check_batch, check_id, check_updates
from .models import Pipeline, PipelineCollection

if TYPE_CHECKING:
    from .client import AmoClient

PIPELINES = "/api/v4/leads/pipelines"


def pipeline_path(pipeline_id: int) -> str:
    return f"{PIPELINES}/{check_id(pipeline_id, 'pipeline_id')}"


class PipelinesAPI:
    def __init__(self, client: AmoClient) -> None:
        self._client = client

    def _seen(self, pipelines: Sequence[Pipeline]) -> None:
        self._client.watermarks.see_pipelines(pipelines)

    async def list(self) -> builtins.list[Pipeline]:
        """Every pipeline of the account with its statuses (the API does not paginate)."""
        page = await self._client.fetch("GET", PIPELINES, PipelineCollection, allow_empty=True)
        if page is None:
            return []
        self._seen(page.embedded.pipelines)
        return builtins.list(page.embedded.pipelines)

    async def get(self, pipeline_id: int) -> Pipeline:
        path = pipeline_path(pipeline_id)
        pipeline = await self._client.fetch("GET", path, Pipeline, allow_empty=True)
        if pipeline is None:
            raise NotFoundError(status=204, method="GET", path=path, detail="Pipeline not found")
        self._seen([pipeline])
        return pipeline

    async def create(
        self,
        pipelines: Iterable[NewPipeline],
        *,
        batch_size: int | None = None,
        on_ambiguous: OnAmbiguous | None = None,
    ) -> builtins.list[Pipeline]:
        """Create pipelines; returns them in input order.

        Items go out in chunks of ``batch_size`` (the client's default unless given).
        After an ambiguous failure the chunk is reconciled (``on_ambiguous="reconcile"``,
        the default) or the failure raised (``"raise"``). If any item fails, a
        :class:`BatchError` says which were created and which were not.
        """
        items = check_batch(pipelines, NewPipeline, MAX_PIPELINES_PER_ACCOUNT, "pipelines")
        options = self._client.batch_options(batch_size, on_ambiguous)
        if options["on_ambiguous"] == "reconcile":
            await self._client.seed_watermarks()
        return await BatchCreate(
            items,
            send=self._send_chunk,
            list_existing=self.list,
            watermark=self._client.watermarks.pipeline,
            **options,
        ).run()

    async def _send_chunk(
        self, items: Sequence[NewPipeline], request_ids: Sequence[str]
    ) -> builtins.list[Pipeline]:
        body = [
            {**converter.unstructure(item), "request_id": rid}
            for item, rid in zip(items, request_ids, strict=True)
        ]
        page = await self._client.fetch("POST", PIPELINES, PipelineCollection, json=body)
        assert page is not None
        created = page.embedded.pipelines
        self._seen(created)
        return in_request_order(request_ids, created, method="POST", path=PIPELINES)

    async def update(self, pipeline_id: int, update: PipelineUpdate) -> Pipeline:
        path = pipeline_path(pipeline_id)
        if not isinstance(update, PipelineUpdate):
            raise InvalidInputError("must be a PipelineUpdate", field="update")
        body = converter.unstructure(update)
        pipeline = await self._client.fetch("PATCH", path, Pipeline, json=body)
        assert pipeline is not None
        return pipeline

    async def update_many(
        self, updates: Mapping[int, PipelineUpdate] | Iterable[tuple[int, PipelineUpdate]]
    ) -> builtins.list[Pipeline]:
        """PATCH several pipelines concurrently (the API has no batch edit); results in
        input order, or :class:`BatchError` with what was and was not changed."""
        pairs = check_updates(updates, PipelineUpdate, "pipeline_id")
        return await fan_out([partial(self.update, p, u) for p, u in pairs])

    async def delete(self, pipeline_id: int) -> None:
        """Delete a pipeline. The API refuses the last one and one that holds leads (422)."""
        await self._client.request("DELETE", pipeline_path(pipeline_id))

    async def delete_many(self, pipeline_ids: Iterable[int]) -> None:
        """DELETE several pipelines concurrently; :class:`BatchError` on any failure."""
        ids = [check_id(p, f"pipeline_ids[{i}]") for i, p in enumerate(pipeline_ids)]
        await fan_out([partial(self.delete, p) for p in ids])
