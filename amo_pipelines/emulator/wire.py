"""Success bodies written straight to JSON text: the bytes ``render`` gives, faster.

A copy's statuses POST answers 97 statuses with three descriptions each (~100 KB), and
building those dicts and running ``json.dumps`` over them was most of the emulator's time per
request. Here each model is written as text with its constant parts (keys, separators, the
``_links`` prefix, the account id) formatted once, and every string escaped by the very
function ``json.dumps(..., ensure_ascii=False)`` uses. The output is byte-for-byte
``render._dumps`` of the ``render`` dicts (tests/emulator/test_emu_wire.py holds them to it),
so the shapes and their sources stay documented in :mod:`.render` and the package docstring.
The models' fields must have their declared types (ints, bools, strings), as every state the
API or the seeding makes has.
"""

from __future__ import annotations

from functools import lru_cache
from json.encoder import encode_basestring

from attrs import frozen

from .render import PIPELINES_PATH
from .state import Description, Pipeline, Status

_BOOL = ("false", "true")
_NULL = "null"


@frozen
class Prefix:
    """What every model of one response shares: the account and the request's origin."""

    account_id: str
    """The account id as text (a description's first member)."""
    account: str
    """``,"account_id":N`` as statuses and pipelines carry it."""
    href: str
    """The escaped ``"<origin>/api/v4/leads/pipelines/`` (open quote, no closing one)."""
    collection_links: str
    """A pipelines collection's ``"_links"`` member."""


@lru_cache(maxsize=64)  # an account's requests come from one or two origins
def prefix(account_id: int, base: str) -> Prefix:
    """The :class:`Prefix` of ``account_id``'s models answered to ``base`` (an origin)."""
    href = encode_basestring(f"{base}{PIPELINES_PATH}/")[:-1]
    own = encode_basestring(f"{base}{PIPELINES_PATH}")
    links = f'"_links":{{"self":{{"href":{own}}}}}'
    return Prefix(str(account_id), f',"account_id":{account_id}', href, links)


def description_text(desc: Description, prefix: Prefix) -> str:
    """``render.description_json`` (its keys are sorted: account_id first)."""
    by = desc.updated_by
    return (
        f'{{"account_id":{prefix.account_id},"created_at":{encode_basestring(desc.created_at)}'
        f',"created_by":{desc.created_by},"description":{encode_basestring(desc.text)}'
        f',"id":{desc.id},"level":{encode_basestring(desc.level)}'
        f',"pipeline_id":{desc.pipeline_id},"status_id":{desc.status_id}'
        f',"updated_at":{encode_basestring(desc.updated_at)}'
        f',"updated_by":{_NULL if by is None else by}}}'
    )


def status_text(
    status: Status, prefix: Prefix, request_id: str | None = None, descriptions: bool = False
) -> str:
    """``render.status_json``."""
    pid, sid = status.pipeline_id, status.id
    rid = "" if request_id is None else f',"request_id":{encode_basestring(request_id)}'
    if descriptions:
        described = [description_text(d, prefix) for d in status.ordered_descriptions()]
        tail = f',"descriptions":[{",".join(described)}]}}'
    else:
        tail = "}"
    return (
        f'{{"id":{sid},"name":{encode_basestring(status.name)},"sort":{status.sort}'
        f',"is_editable":{_BOOL[status.is_editable]},"pipeline_id":{pid}'
        f',"color":{encode_basestring(status.color)},"type":{status.type}{prefix.account}{rid}'
        f',"_links":{{"self":{{"href":{prefix.href}{pid}/statuses/{sid}"}}}}{tail}'
    )


def statuses_text(
    statuses: list[Status],
    prefix: Prefix,
    *,
    request_ids: list[str] | None = None,
    descriptions: bool = False,
) -> bytes:
    """``render.statuses_collection`` of ``render.status_json`` items, encoded."""
    # Encoded one by one and joined as bytes: one non-ASCII name would otherwise widen the
    # whole text before the join and the encoding copied it again.
    if request_ids is None:
        items = [status_text(s, prefix, None, descriptions).encode() for s in statuses]
    else:
        items = [
            status_text(s, prefix, r, descriptions).encode()
            for s, r in zip(statuses, request_ids, strict=True)
        ]
    head = f'{{"_total_items":{len(statuses)},"_embedded":{{"statuses":['
    return b"".join((head.encode(), b",".join(items), b"]}}"))


def status_body(
    status: Status, prefix: Prefix, *, request_id: str | None = None, descriptions: bool = False
) -> bytes:
    """One ``render.status_json``, encoded."""
    return status_text(status, prefix, request_id, descriptions).encode()


def pipeline_body(pipeline: Pipeline, prefix: Prefix, *, request_id: str | None = None) -> bytes:
    """One ``render.pipeline_json``, encoded."""
    pid = pipeline.id
    rid = "" if request_id is None else f',"request_id":{encode_basestring(request_id)}'
    head = (
        f'{{"id":{pid},"name":{encode_basestring(pipeline.name)},"sort":{pipeline.sort}'
        f',"is_main":{_BOOL[pipeline.is_main]},"is_unsorted_on":{_BOOL[pipeline.is_unsorted_on]}'
        f',"is_archive":{_BOOL[pipeline.is_archive]}{prefix.account}{rid}'
        f',"_links":{{"self":{{"href":{prefix.href}{pid}"}}}},"_embedded":{{"statuses":['
    )
    statuses = [status_text(s, prefix).encode() for s in pipeline.shown_statuses()]
    return b"".join((head.encode(), b",".join(statuses), b"]}}"))


def pipelines_text(
    pipelines: list[Pipeline], prefix: Prefix, *, request_ids: list[str] | None = None
) -> bytes:
    """``render.pipelines_collection`` of ``render.pipeline_json`` items, encoded."""
    if request_ids is None:
        items = [pipeline_body(p, prefix) for p in pipelines]
    else:
        items = [
            pipeline_body(p, prefix, request_id=r)
            for p, r in zip(pipelines, request_ids, strict=True)
        ]
    head = (
        f'{{"_total_items":{len(pipelines)},{prefix.collection_links},"_embedded":{{"pipelines":['
    )
    return b"".join((head.encode(), b",".join(items), b"]}}"))
