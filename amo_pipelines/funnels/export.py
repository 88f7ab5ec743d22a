"""Reading an account: the live snapshot the planner compares with, and ``export``.

An export is one ``GET /leads/pipelines`` (every pipeline with its statuses) plus one
``GET .../statuses?with=descriptions`` per pipeline, sent concurrently (the client's rate
limiter paces them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable, Mapping

from attrs import frozen

from ..client import AmoClient
from ..model.constants import LOST_STATUS_ID, WON_STATUS_ID
from ..model.models import Pipeline, Status, description_values
from ._read import normalize_color
from .progress import NO_PROGRESS, Progress
from .spec import FunnelsSpec, PipelineSpec, SourceInfo, StatusSpec


@frozen
class Snapshot:
    """What an account holds: its pipelines (in the API's order) and, for the pipelines read
    with them, their statuses with descriptions."""

    host: str
    pipelines: tuple[Pipeline, ...]
    described: Mapping[int, tuple[Status, ...]]

    @property
    def account_id(self) -> int | None:
        return self.pipelines[0].account_id if self.pipelines else None

    def statuses(self, pipeline: Pipeline) -> tuple[Status, ...]:
        """The pipeline's statuses, with descriptions where they were read."""
        return self.described.get(pipeline.id, pipeline.statuses)


def account_host(amo: AmoClient) -> str:
    url = amo.base_url
    default = {"https": 443, "http": 80}.get(url.scheme or "")
    return f"{url.host}:{url.port}" if url.port not in (None, default) else str(url.host)


async def read_account(
    amo: AmoClient,
    *,
    choose: Callable[[Snapshot], Iterable[Pipeline]] | None = None,
    progress: Progress = NO_PROGRESS,
) -> Snapshot:
    """List the pipelines, then read with descriptions the statuses of those ``choose``
    picks from the listing (all by default), concurrently."""
    progress.expect(1)
    pipelines = await amo.pipelines.list()
    progress.advance()
    listed = Snapshot(host=account_host(amo), pipelines=tuple(pipelines), described={})
    chosen = list(listed.pipelines if choose is None else choose(listed))
    progress.expect(len(chosen))

    async def one(pipeline: Pipeline) -> tuple[Status, ...]:
        statuses = await amo.statuses.list(pipeline.id, with_descriptions=True)
        progress.advance()
        return keep_hidden_incoming(pipeline, statuses)

    read = await asyncio.gather(*(one(p) for p in chosen))
    return Snapshot(
        host=listed.host,
        pipelines=listed.pipelines,
        described={p.id: r for p, r in zip(chosen, read, strict=True)},
    )


def keep_hidden_incoming(pipeline: Pipeline, statuses: list[Status]) -> tuple[Status, ...]:
    # Both listings leave the incoming status out while incoming leads are off; keep what
    # the pipeline listing showed so the two views agree.
    incoming = pipeline.incoming
    if incoming is not None and not any(s.is_incoming for s in statuses):
        statuses = [incoming, *statuses]
    return tuple(statuses)


def status_role(status: Status) -> str | None:
    if status.is_incoming:
        return "incoming"
    return _ROLE_OF.get(status.id)


_ROLE_OF = {WON_STATUS_ID: "won", LOST_STATUS_ID: "lost"}


def snapshot_to_spec(snapshot: Snapshot, *, now: dt.datetime | None = None) -> FunnelsSpec:
    """The snapshot as a funnels file, ids kept, with its source header."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    return FunnelsSpec(
        source=SourceInfo(
            host=snapshot.host,
            account_id=snapshot.account_id,
            exported_at=moment.replace(microsecond=0).isoformat(),
        ),
        pipelines=tuple(
            PipelineSpec(
                id=p.id,
                name=p.name,
                is_main=p.is_main,
                is_unsorted_on=p.is_unsorted_on,
                statuses=tuple(status_spec(s) for s in sorted_statuses(snapshot.statuses(p))),
            )
            for p in snapshot.pipelines
        ),
    )


def sorted_statuses(statuses: tuple[Status, ...]) -> list[Status]:
    return sorted(statuses, key=lambda s: (s.sort, s.id))


def status_spec(status: Status) -> StatusSpec:
    role = status_role(status)
    descriptions = None
    # description_values: the texts without making the description objects a large answer
    # keeps as rows (a copy's source has ~15,000 of them, which it would then hold)
    values = description_values(status) if role is None else None
    if values:
        found = {str(level): text for _, level, text in values}
        descriptions = tuple(
            (lvl, found[lvl]) for lvl in ("newbie", "candidate", "master") if lvl in found
        )
    return StatusSpec(
        id=status.id,
        role=role,
        name=status.name,
        color=normalize_color(status.color) if _is_hex(status.color) else None,
        descriptions=descriptions,
    )


def _is_hex(color: str) -> bool:
    # strip() runs in C: a copy's source has 5,000 colors to check before any target starts
    return len(color) in (4, 7) and color[0] == "#" and not color[1:].strip(_HEX_DIGITS)


_HEX_DIGITS = "0123456789abcdefABCDEF"


async def export(amo: AmoClient, *, progress: Progress = NO_PROGRESS) -> FunnelsSpec:
    """The account's pipelines, statuses and descriptions as a :class:`FunnelsSpec`."""
    return snapshot_to_spec(await read_account(amo, progress=progress))
