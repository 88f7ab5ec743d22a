"""Mapping batch-create results back to the caller's input order by ``request_id``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from attrs import evolve

from .errors import UnexpectedResponseError
from .inputs import NewPipeline, NewStatus
from .models import Pipeline, Status

T = TypeVar("T", Pipeline, Status)


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


def in_input_order(
    items: Sequence[NewPipeline | NewStatus],
    request_ids: Sequence[str],
    results: Sequence[T],
    *,
    method: str,
    path: str,
) -> list[T]:
    """Order ``results`` like ``items`` and give each back the caller's own request_id."""
    by_id = {r.request_id: r for r in results if r.request_id is not None}
    if len(by_id) == len(results) and all(rid in by_id for rid in request_ids):
        ordered = [by_id[rid] for rid in request_ids]
    elif len(results) == len(request_ids):
        ordered = list(results)  # no echo to go by: the API answers in request order
    else:
        raise UnexpectedResponseError(
            status=200,
            method=method,
            path=path,
            detail=f"sent {len(request_ids)} items, the response holds {len(results)}",
        )
    return [
        r if r.request_id == item.request_id else evolve(r, request_id=item.request_id)
        for r, item in zip(ordered, items, strict=True)
    ]
