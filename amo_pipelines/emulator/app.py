"""The aiohttp application: the ten pipeline and status endpoints behind the gateway, the
OAuth token endpoint in front of it, and the emulator-only ``/_emulator/`` endpoints first."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .control import control_gateway
from .gateway import RUNTIME, Reply, Runtime, gateway
from .oauth import OAUTH, OAuthServer, oauth_gateway
from .render import PIPELINES_PATH, hal_body, problem
from .rules import MAX_BATCH
from .state import Pipeline, StateError, Status
from .validation import (
    validate_new_pipelines,
    validate_new_statuses,
    validate_pipeline_patch,
    validate_status_patch,
)
from .wire import (
    Prefix,
    pipeline_body,
    pipelines_text,
    prefix,
    status_body,
    statuses_text,
)

# --- request helpers --------------------------------------------------------------------------


def _prefix(request: web.Request) -> Prefix:
    """What the answer's models share: the account id and the request's own origin."""
    return prefix(request.app[RUNTIME].state.account_id, str(request.url.origin()))


def _id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _pipeline(request: web.Request) -> Pipeline:
    rt = request.app[RUNTIME]
    pid = _id(request.match_info["pipeline_id"])
    pipeline = rt.state.pipelines.get(pid) if pid is not None else None
    if pipeline is None:
        raise Reply(problem(404, "Pipeline not found"))
    return pipeline


def _status(request: web.Request) -> tuple[Pipeline, Status]:
    pipeline = _pipeline(request)
    sid = _id(request.match_info["status_id"])
    status = pipeline.statuses.get(sid) if sid is not None else None
    if status is None:
        raise Reply(problem(404, "Status not found"))
    return pipeline, status


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def _body(request: web.Request, *, array: bool) -> Any:
    """The JSON body: a non-empty array (batch POST) or a non-empty object (PATCH)."""
    return _parse(request, await request.read(), array=array)


def _parse(request: web.Request, raw: bytes, *, array: bool) -> Any:
    """:func:`_body` once the body is read."""
    if not raw.strip():
        raise Reply(problem(400, "Request data can not be empty"))
    if request.content_type != "application/json":
        raise Reply(problem(400, "Content-Type must be application/json"))
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError):
        raise Reply(problem(400, "Request body is not valid JSON")) from None
    if data is None or data == [] or data == {}:
        raise Reply(problem(400, "Request data can not be empty"))
    if array and not isinstance(data, list):
        raise Reply(problem(400, "Request data must be an array of objects"))
    if not array and not isinstance(data, dict):
        raise Reply(problem(400, "Request data must be an object"))
    if array and len(data) > MAX_BATCH:
        raise Reply(problem(422, f"Limit {MAX_BATCH} per page"))
    return data


def _paused(work: Callable[[], web.Response]) -> web.Response:
    """``work()`` with CPython's cyclic collector paused, unless someone paused it already.

    A copy's statuses POST makes a thousand containers (the parsed body, the plans, 97
    statuses and 291 descriptions) and the collector, run every 700 of them, ran several
    times within one request, finding nothing (the parsed body dies by reference counting
    at its end, the rest joins the account) but promoting all of it, so that full
    collections of every account the process holds came often: a third of the emulator's
    CPU per such request. ``work`` never awaits, so no other request runs while paused.
    """
    if not gc.isenabled():
        return work()
    gc.disable()
    try:
        return work()
    finally:
        gc.enable()


def _with(request: web.Request) -> set[str]:
    return {part.strip() for part in request.query.get("with", "").split(",") if part.strip()}


# --- pipelines --------------------------------------------------------------------------------


async def list_pipelines(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    return hal_body(pipelines_text(rt.state.ordered_pipelines(), _prefix(request)))


async def get_pipeline(request: web.Request) -> web.Response:
    return hal_body(pipeline_body(_pipeline(request), _prefix(request)))


async def create_pipelines(request: web.Request) -> web.Response:
    raw = await request.read()

    def work() -> web.Response:
        rt = request.app[RUNTIME]
        plans = validate_new_pipelines(_parse(request, raw, array=True), rt.fields)
        created = rt.state.create_pipelines(plans)
        ids = [plan.request_id for plan in plans]
        return hal_body(pipelines_text(created, _prefix(request), request_ids=ids))

    return _paused(work)


async def patch_pipeline(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    pipeline = _pipeline(request)
    patch = validate_pipeline_patch(await _body(request, array=False), rt.fields)
    rt.state.patch_pipeline(pipeline, patch)
    return hal_body(pipeline_body(pipeline, _prefix(request), request_id=patch.request_id))


async def delete_pipeline(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    rt.state.delete_pipeline(_pipeline(request))
    return web.Response(status=204)


# --- statuses ---------------------------------------------------------------------------------


async def list_statuses(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    with_desc = "descriptions" in _with(request)
    return hal_body(
        statuses_text(pipeline.shown_statuses(), _prefix(request), descriptions=with_desc)
    )


async def get_status(request: web.Request) -> web.Response:
    _, status = _status(request)
    with_desc = "descriptions" in _with(request)
    return hal_body(status_body(status, _prefix(request), descriptions=with_desc))


async def create_statuses(request: web.Request) -> web.Response:
    pipeline = _pipeline(request)
    raw = await request.read()

    def work() -> web.Response:
        rt = request.app[RUNTIME]
        plans = validate_new_statuses(_parse(request, raw, array=True), rt.fields)
        created = rt.state.create_statuses(pipeline, plans)
        ids = [plan.request_id for plan in plans]
        body = statuses_text(created, _prefix(request), request_ids=ids, descriptions=True)
        return hal_body(body)

    return _paused(work)


async def patch_status(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    _, status = _status(request)
    if status.is_system:
        raise StateError(400, "Status is not editable")
    existing = {d.id: d.level for d in status.descriptions.values()}
    patch = validate_status_patch(await _body(request, array=False), existing, rt.fields)
    rt.state.patch_status(status, patch)
    body = status_body(status, _prefix(request), request_id=patch.request_id, descriptions=True)
    return hal_body(body)


async def delete_status(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    _, status = _status(request)
    rt.state.delete_status(status)
    return web.Response(status=204)


# --- assembly ---------------------------------------------------------------------------------


def build_app(runtime: Runtime, oauth: OAuthServer | None = None) -> web.Application:
    """The aiohttp application over ``runtime`` (usable with aiohttp's test client too).

    ``oauth`` serves ``/oauth2/access_token``; by default one with the config's client."""
    cfg = runtime.config
    if oauth is None:
        oauth = OAuthServer(
            runtime.state,
            clock=cfg.clock,
            access_lifetime=cfg.access_token_lifetime,
            refresh_lifetime=cfg.refresh_token_lifetime,
            code_lifetime=cfg.code_lifetime,
            seed=cfg.seed,
        )
        oauth.register(cfg.oauth_client_id, cfg.oauth_client_secret, cfg.oauth_redirect_uri)
    app = web.Application(
        middlewares=[control_gateway, oauth_gateway, gateway], client_max_size=cfg.client_max_size
    )
    app[RUNTIME] = runtime
    app[OAUTH] = oauth
    one = f"{PIPELINES_PATH}/{{pipeline_id}}"
    statuses = f"{one}/statuses"
    status = f"{statuses}/{{status_id}}"
    app.router.add_get(PIPELINES_PATH, list_pipelines, allow_head=False)
    app.router.add_post(PIPELINES_PATH, create_pipelines)
    app.router.add_get(one, get_pipeline, allow_head=False)
    app.router.add_patch(one, patch_pipeline)
    app.router.add_delete(one, delete_pipeline)
    app.router.add_get(statuses, list_statuses, allow_head=False)
    app.router.add_post(statuses, create_statuses)
    app.router.add_get(status, get_status, allow_head=False)
    app.router.add_patch(status, patch_status)
    app.router.add_delete(status, delete_status)
    return app
