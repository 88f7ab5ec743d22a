"""Emulator-only endpoints under ``/_emulator/``: no part of the API, there so that another
process (a browser, an OAuth callback under test, a test watching a server it started as a
process) can see and drive what ``Emulator`` attributes and methods give in process.

None of them is logged or counted, needs a token, is rate limited, faulted or blocked. Each
serves the account (the port) it is asked on; under ``--accounts N`` every account has its own.

``POST /_emulator/oauth/code`` stands in for the consent screen, like ``emu.issue_code()``:
it answers 200 ``application/json`` ``{"code": ..., "client_id": ..., "redirect_uri": ...,
"expires_in": <seconds>}`` with a fresh single-use code. An optional JSON object body picks
``client_id`` (a registered client; default the config's), ``admin`` (bool, default true)
and ``user_id`` (int, default 1).

``GET /_emulator/log[?since=N]`` is ``emu.request_log`` from index ``N`` on (default 0):
``{"entries": [...], "next": <len(log)>}``; a poller passes the last ``next`` as ``since`` to
read only what came since (an ``N`` past the end gives no entries; ``emu.clear_log()`` starts
the indexes again at 0). Each entry: ``index`` (its place in the log), ``method``, ``path``,
``query`` (raw, no ``?``), ``status`` (null while pending or when the connection was
dropped), ``outcome``, ``arrived_at`` and ``finished_at`` (seconds on the emulator's monotonic
clock, the same for every account of a process; ``finished_at`` null while pending),
``latency``, ``processed_status``, ``user_agent``, ``peer`` (the client's ``host:port``) and
``token_kind`` (``"admin"``, ``"user"``, ``"other"`` for a token the account does not know,
null when none was sent). Never the token or the body. Two writes whose ``[arrived_at,
finished_at]`` windows overlap were being processed at the same time. ``since`` other than a
whole number >= 0: 400 problem+json.

``GET /_emulator/stats`` is ``emu.stats``: ``{"requests", "responses" (by status, keys are
strings), "rate_limited", "blocks", "blocked", "blocked_requests", "faults",
"faults_committed", "internal_errors", "token_requests", "token_grants"}``.

Other methods on these paths: 405; other ``/_emulator/`` paths: 404 (problem+json).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .gateway import RUNTIME, Handler
from .oauth import OAUTH
from .render import problem

PREFIX = "/_emulator/"
CODE_PATH = "/_emulator/oauth/code"
LOG_PATH = "/_emulator/log"
STATS_PATH = "/_emulator/stats"


def _code_request(body: bytes) -> dict[str, Any]:
    """The optional parameters; ValueError says what is wrong with them."""
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except ValueError:
        raise ValueError("Request body is not valid JSON") from None
    if not isinstance(params, dict):
        raise ValueError("Request body must be a JSON object")
    client_id = params.get("client_id")
    if client_id is not None and not isinstance(client_id, str):
        raise ValueError("client_id must be a string")
    if not isinstance(params.get("admin", True), bool):
        raise ValueError("admin must be a boolean")
    user_id = params.get("user_id", 1)
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise ValueError("user_id must be an integer")
    return params


async def issue_code(request: web.Request) -> web.Response:
    server = request.app[OAUTH]
    try:
        params = _code_request(await request.read())
    except ValueError as exc:
        return problem(400, str(exc))
    client_id = params.get("client_id")
    if client_id is not None and client_id not in server.clients:
        return problem(400, f"Unknown client {client_id!r}")
    code = server.issue_code(
        client_id=client_id, admin=params.get("admin", True), user_id=params.get("user_id", 1)
    )
    client = server.clients[server.codes[code].client_id]
    lifetime = server.code_lifetime
    return web.json_response(
        {
            "code": code,
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
        }
    )


def _since(request: web.Request) -> int:
    raw = request.query.get("since", "0")
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"since must be a whole number >= 0, got {raw!r}")
    return int(raw)


async def request_log(request: web.Request) -> web.Response:
    log = request.app[RUNTIME].log
    try:
        since = _since(request)
    except ValueError as exc:
        return problem(400, str(exc))
    # One slice, read with no await in between, so "next" matches the entries sent.
    entries = log[since:]
    return web.json_response(
        {
            "entries": [dict(entry.public(), index=since + i) for i, entry in enumerate(entries)],
            "next": len(log),
        }
    )


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].stats.public())


_ROUTES = {
    CODE_PATH: ("POST", issue_code),
    LOG_PATH: ("GET", request_log),
    STATS_PATH: ("GET", stats),
}


@web.middleware
async def control_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve ``/_emulator/*``; hand every other request on."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    route = _ROUTES.get(request.path)
    if route is None:
        return problem(404, "Not found")
    method, serve = route
    if request.method != method:
        return problem(405, "Method not allowed")
    return await serve(request)
