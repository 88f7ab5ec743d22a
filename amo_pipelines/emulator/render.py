"""Response bodies: HAL models shaped like the spec examples, problem+json errors, HTML pages."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from .plans import ItemErrors
from .state import Description, Pipeline, Status

HAL_JSON = "application/hal+json"
PROBLEM_JSON = "application/problem+json"
PIPELINES_PATH = "/api/v4/leads/pipelines"


# json.dumps with any option makes a new encoder per call; this one is made once. No body
# here refers to itself, so the circularity check is skipped; the text is the same.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _dumps(data: Any) -> bytes:
    return _ENCODER.encode(data).encode("utf-8")


def _links(href: str) -> dict[str, Any]:
    return {"self": {"href": href}}


def description_json(desc: Description, account_id: int) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "created_at": desc.created_at,
        "created_by": desc.created_by,
        "description": desc.text,
        "id": desc.id,
        "level": desc.level,
        "pipeline_id": desc.pipeline_id,
        "status_id": desc.status_id,
        "updated_at": desc.updated_at,
        "updated_by": desc.updated_by,
    }


def status_json(
    status: Status,
    base: str,
    account_id: int,
    *,
    request_id: str | None = None,
    descriptions: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": status.id,
        "name": status.name,
        "sort": status.sort,
        "is_editable": status.is_editable,
        "pipeline_id": status.pipeline_id,
        "color": status.color,
        "type": status.type,
        "account_id": account_id,
    }
    if request_id is not None:
        data["request_id"] = request_id
    data["_links"] = _links(f"{base}{PIPELINES_PATH}/{status.pipeline_id}/statuses/{status.id}")
    if descriptions:
        data["descriptions"] = [
            description_json(d, account_id) for d in status.ordered_descriptions()
        ]
    return data


def pipeline_json(
    pipeline: Pipeline, base: str, account_id: int, *, request_id: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": pipeline.id,
        "name": pipeline.name,
        "sort": pipeline.sort,
        "is_main": pipeline.is_main,
        "is_unsorted_on": pipeline.is_unsorted_on,
        "is_archive": pipeline.is_archive,
        "account_id": account_id,
    }
    if request_id is not None:
        data["request_id"] = request_id
    data["_links"] = _links(f"{base}{PIPELINES_PATH}/{pipeline.id}")
    data["_embedded"] = {
        "statuses": [status_json(s, base, account_id) for s in pipeline.shown_statuses()]
    }
    return data


def pipelines_collection(items: list[dict[str, Any]], base: str) -> dict[str, Any]:
    return {
        "_total_items": len(items),
        "_links": _links(f"{base}{PIPELINES_PATH}"),
        "_embedded": {"pipelines": items},
    }


def statuses_collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    # The spec's statuses collections (list and create) carry no collection-level _links.
    return {"_total_items": len(items), "_embedded": {"statuses": items}}


def hal(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=_dumps(data), content_type=HAL_JSON)


def hal_body(body: bytes, status: int = 200) -> web.Response:
    """A success whose body :mod:`.wire` wrote (the bytes :func:`hal` would send)."""
    return web.Response(status=status, body=body, content_type=HAL_JSON)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # pragma: no cover - only for odd codes
        return "Error"


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    body: dict[str, Any] = {
        "title": _title(status),
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return web.Response(status=status, body=_dumps(body), content_type=PROBLEM_JSON)


def validation_problem(items: list[ItemErrors], status: int = 400) -> web.Response:
    body = {
        "validation-errors": [
            {"request_id": item.request_id, "errors": [e.to_json() for e in item.errors]}
            for item in items
        ],
        "title": _title(status),
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": "Request validation failed",
    }
    return web.Response(status=status, body=_dumps(body), content_type=PROBLEM_JSON)


def html(status: int, page: str) -> web.Response:
    return web.Response(status=status, text=page, content_type="text/html")
