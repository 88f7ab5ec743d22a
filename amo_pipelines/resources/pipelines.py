"""``amo.pipelines``: the five pipeline endpoints, plus batch update and delete."""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from ..errors import InvalidInputError, NotFoundError
from ..model.constants import LOST_STATUS_ID, MAX_PIPELINES_PER_ACCOUNT, WON_STATUS_ID
from ..model.converter import converter
from ..model.inputs import (
    NewPipeline,
    PipelineUpdate,
    check_batch,
    check_id,
    check_ids,
    check_updates,
)
from ..model.models import Pipeline, PipelineCollection
from .batch import Batches, OnAmbiguous, encode_json, in_request_order

if TYPE_CHECKING:
    from ..client import AmoClient

PIPELINES = "/api/v4/leads/pipelines"


def pipeline_path(pipeline_id: int) -> str:
    return f"{PIPELINES}/{check_id(pipeline_id, 'pipeline_id')}"


class PipelinesAPI:
    def __init__(self, client: AmoClient, batches: Batches) -> None:
        self._client = client
        self._batches = batches

    def _seen(self, pipelines: Sequence[Pipeline]) -> None:
        self._batches.watermarks.see_pipelines(pipelines)

    async def list(self) -> builtins.list[Pipeline]:
        """Every pipeline of the account with its statuses (the API does not paginate)."""
        page = await self._client.fetch_optional("GET", PIPELINES, PipelineCollection)
        if page is None:
            return []
        self._seen(page.embedded.pipelines)
        return builtins.list(page.embedded.pipelines)

    async def get(self, pipeline_id: int) -> Pipeline:
        path = pipeline_path(pipeline_id)
        pipeline = await self._client.fetch_optional("GET", path, Pipeline)
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
        :class:`BatchError` says which were created and which were not; a single refusal
        with nothing written (403, say) is raised as it is. See
        :mod:`amo_pipelines.resources.batch`.
        """
        items = check_batch(pipelines, NewPipeline, MAX_PIPELINES_PER_ACCOUNT, "pipelines")
        return await self._batches.create(
            items,
            kind="pipeline",
            scope="pipelines",
            where="pipelines",
            send=self._send_chunk,
            list_existing=self.list,
            matches=is_created_from,
            batch_size=batch_size,
            on_ambiguous=on_ambiguous,
        )

    async def _send_chunk(self, body: bytes, request_ids: Sequence[str]) -> builtins.list[Pipeline]:
        page = await self._client.fetch("POST", PIPELINES, PipelineCollection, body=body)
        created = page.embedded.pipelines
        self._seen(created)
        return in_request_order(request_ids, created, method="POST", path=PIPELINES)

    async def update(self, pipeline_id: int, update: PipelineUpdate) -> Pipeline:
        path = pipeline_path(pipeline_id)
        if not isinstance(update, PipelineUpdate):
            raise InvalidInputError("must be a PipelineUpdate", field="update")
        body = encode_json(converter.unstructure(update), "update")
        return await self._patch(path, body)

    async def _patch(self, path: str, body: bytes) -> Pipeline:
        pipeline = await self._client.fetch("PATCH", path, Pipeline, body=body)
        return pipeline

    async def update_many(
        self, updates: Mapping[int, PipelineUpdate] | Iterable[tuple[int, PipelineUpdate]]
    ) -> builtins.list[Pipeline]:
        """PATCH several pipelines concurrently (the API has no batch edit); results in
        input order, or :class:`BatchError` with what was and was not changed (a single
        refusal with nothing changed is raised as it is)."""
        pairs = check_updates(updates, PipelineUpdate, "pipeline_id")
        calls = [
            partial(
                self._patch,
                pipeline_path(p),
                encode_json(converter.unstructure(u), f"updates[{i}]"),
            )
            for i, (p, u) in enumerate(pairs)
        ]
        return await self._batches.fan_out(calls)

    async def delete(self, pipeline_id: int) -> None:
        """Delete a pipeline. The API refuses the last one and one that holds leads (422)."""
        await self._client.request("DELETE", pipeline_path(pipeline_id))

    async def delete_many(self, pipeline_ids: Iterable[int]) -> None:
        """DELETE several pipelines concurrently; :class:`BatchError` on any failure (a
        single refusal with nothing deleted is raised as it is)."""
        ids = check_ids(pipeline_ids, "pipeline_ids")
        await self._batches.fan_out([partial(self.delete, p) for p in ids])


def is_created_from(item: NewPipeline, pipeline: Pipeline) -> bool:
    """Whether ``pipeline`` holds every field ``item`` sent that the API keeps as sent.

    ``sort`` is left out, of the pipeline and of its statuses: the API may renumber it.
    """
    if (item.name, item.is_main, item.is_unsorted_on) != (
        pipeline.name,
        pipeline.is_main,
        pipeline.is_unsorted_on,
    ):
        return False
    custom = [s for s in item.statuses if not s.is_system]
    if Counter(s.name for s in custom) != Counter(s.name for s in pipeline.custom_statuses):
        return False
    for sent in custom:
        if sent.color is not None and not any(
            s.name == sent.name and s.color.lower() == sent.color.value
            for s in pipeline.custom_statuses
        ):
            return False
    names = {WON_STATUS_ID: item.won_status_name, LOST_STATUS_ID: item.lost_status_name}
    names.update({s.id: s.name for s in item.statuses if s.id is not None})
    for status_id, name in names.items():
        status = pipeline.status_by_id(status_id)
        if name is not None and (status is None or status.name != name):
            return False
    return True
