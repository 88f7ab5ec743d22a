"""``amo.statuses``: the five status endpoints of a pipeline, plus batch update and delete."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING

from ..errors import AmoError, InvalidInputError, NotFoundError, UnknownOutcomeError
from ..model.constants import MAX_CUSTOM_STATUSES_PER_PIPELINE
from ..model.converter import converter
from ..model.inputs import NewStatus, StatusUpdate, check_batch, check_id, check_ids, check_updates
from ..model.models import Status, StatusCollection
from .batch import Batches, OnAmbiguous, encode_json, in_request_order
from .pipelines import pipeline_path

if TYPE_CHECKING:
    from ..client import AmoClient

WITH_DESCRIPTIONS = {"with": "descriptions"}


def statuses_path(pipeline_id: int) -> str:
    return f"{pipeline_path(pipeline_id)}/statuses"


def status_path(pipeline_id: int, status_id: int) -> str:
    return f"{statuses_path(pipeline_id)}/{check_id(status_id, 'status_id')}"


class StatusesAPI:
    def __init__(self, client: AmoClient, batches: Batches) -> None:
        self._client = client
        self._batches = batches

    async def list(
        self, pipeline_id: int, *, with_descriptions: bool = False
    ) -> builtins.list[Status]:
        path = statuses_path(pipeline_id)
        query = WITH_DESCRIPTIONS if with_descriptions else None
        page = await self._client.fetch_optional("GET", path, StatusCollection, query=query)
        if page is None:
            return []
        self._batches.watermarks.see_statuses(page.embedded.statuses)
        return builtins.list(page.embedded.statuses)

    async def get(
        self, pipeline_id: int, status_id: int, *, with_descriptions: bool = False
    ) -> Status:
        path = status_path(pipeline_id, status_id)
        query = WITH_DESCRIPTIONS if with_descriptions else None
        status = await self._client.fetch_optional("GET", path, Status, query=query)
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

        async def send(body: bytes, request_ids: Sequence[str]) -> list[Status]:
            page = await self._client.fetch("POST", path, StatusCollection, body=body)
            created = page.embedded.statuses
            self._batches.watermarks.see_statuses(created)
            return in_request_order(request_ids, created, method="POST", path=path)

        async def list_existing() -> list[Status]:
            # with=descriptions: a reconciled status comes back as complete as a created one,
            # and its descriptions can be compared with the ones sent.
            found = await self.list(pipeline_id, with_descriptions=True)
            return [s for s in found if not s.is_system]

        return await self._batches.create(
            items,
            kind="status",
            scope=("statuses", pipeline_id),
            where="statuses",
            send=send,
            list_existing=list_existing,
            matches=is_created_from,
            ordered=True,  # sort is relative to what exists: chunks must land in order
            batch_size=batch_size,
            on_ambiguous=on_ambiguous,
        )

    async def update(self, pipeline_id: int, status_id: int, update: StatusUpdate) -> Status:
        """Change a status.

        An update that creates or deletes descriptions is not idempotent (a second copy
        would create another description, or fail to delete one already gone), so it is
        never resent after an ambiguous failure. The status is read instead: if it shows
        the change, the update succeeded; if not, :class:`UnknownOutcomeError` says the
        outcome is unknown (the first copy may still land).
        """
        status_path(pipeline_id, status_id)
        if not isinstance(update, StatusUpdate):
            raise InvalidInputError("must be a StatusUpdate", field="update")
        body = encode_json(converter.unstructure(update), "update")
        return await self._patch(pipeline_id, status_id, update, body)

    async def _patch(
        self, pipeline_id: int, status_id: int, update: StatusUpdate, body: bytes
    ) -> Status:
        path = status_path(pipeline_id, status_id)
        idempotent = not any(d.id is None or d.is_delete for d in update.descriptions or ())
        try:
            status = await self._client.fetch(
                "PATCH", path, Status, body=body, idempotent=idempotent
            )
        except AmoError as e:
            if idempotent or not e.may_have_been_processed:
                raise
            return await self._check_applied(pipeline_id, status_id, update, e)
        return status

    async def _check_applied(
        self, pipeline_id: int, status_id: int, update: StatusUpdate, failure: AmoError
    ) -> Status:
        what = f"PATCH {status_path(pipeline_id, status_id)}"
        try:
            status = await self.get(pipeline_id, status_id, with_descriptions=True)
        except AmoError as e:
            raise UnknownOutcomeError(
                f"{what} failed ({failure}) and the status could not be read to tell whether "
                f"it was applied ({e}); read it before trying again",
                cause=failure,
            ) from failure
        if shows_update(status, update):
            return status
        raise UnknownOutcomeError(
            f"{what} failed ({failure}) and the status does not show the change yet; it may "
            "still be applied: read the status before trying again",
            cause=failure,
        ) from failure

    async def update_many(
        self,
        pipeline_id: int,
        updates: Mapping[int, StatusUpdate] | Iterable[tuple[int, StatusUpdate]],
    ) -> builtins.list[Status]:
        """PATCH several statuses of one pipeline concurrently; results in input order,
        or :class:`BatchError` with what was and was not changed."""
        statuses_path(pipeline_id)
        pairs = check_updates(updates, StatusUpdate, "status_id")
        calls = [
            partial(
                self._patch,
                pipeline_id,
                s,
                u,
                encode_json(converter.unstructure(u), f"updates[{i}]"),
            )
            for i, (s, u) in enumerate(pairs)
        ]
        return await self._batches.fan_out(calls)

    async def delete(self, pipeline_id: int, status_id: int) -> None:
        """Delete a status; its leads move to the pipeline's first status."""
        await self._client.request("DELETE", status_path(pipeline_id, status_id))

    async def delete_many(self, pipeline_id: int, status_ids: Iterable[int]) -> None:
        """DELETE several statuses of one pipeline concurrently; :class:`BatchError` on
        any failure (a single refusal with nothing deleted is raised as it is)."""
        statuses_path(pipeline_id)
        ids = check_ids(status_ids, "status_ids")
        await self._batches.fan_out([partial(self.delete, pipeline_id, s) for s in ids])


def is_created_from(item: NewStatus, status: Status) -> bool:
    """Whether ``status`` holds every field ``item`` sent that the API keeps as sent.

    ``sort`` is left out: the API renumbers it. ``status`` must have been read with its
    descriptions.
    """
    if status.name != item.name:
        return False
    if item.color is not None and status.color.lower() != item.color.value:
        return False
    sent = {(d.level.value, d.description) for d in item.descriptions}
    return sent == {(str(d.level), d.description) for d in status.descriptions or ()}


def shows_update(status: Status, update: StatusUpdate) -> bool:
    """Whether ``status`` (read with its descriptions) shows every change of ``update``.

    ``sort`` cannot be checked: the API renumbers it.
    """
    if update.name is not None and status.name != update.name:
        return False
    if update.color is not None and status.color.lower() != update.color.value:
        return False
    held = status.descriptions or ()
    for change in update.descriptions or ():
        if change.is_delete:
            if any(d.id == change.id for d in held):
                return False
        elif not any(
            str(d.level) == change.level.value
            and d.description == change.description
            and (change.id is None or d.id == change.id)
            for d in held
        ):
            return False
    return True
