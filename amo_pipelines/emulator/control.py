"""Emulator-only endpoints under ``/_emulator/``: no part of the API, there so that another
process (a browser, an OAuth callback under test) can drive what ``Emulator`` methods do in
process.

``POST /_emulator/oauth/code`` stands in for the consent screen, like ``emu.issue_code()``:
it answers 200 ``application/json`` ``{"code": ..., "client_id": ..., "redirect_uri": ...,
"expires_in": <seconds>}`` with a fresh single-use code. An optional JSON object body picks
``client_id`` (a registered client; default the config's), ``admin`` (bool, default true)
and ``user_id`` (int, default 1). These requests are not logged or counted, need no token,
are never rate limited, faulted or blocked.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .gateway import Handler
from .oauth import OAUTH
from .render import problem

PREFIX = "/_emulator/"
CODE_PATH = "/_emulator/oauth/code"


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


@web.middleware
async def control_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve ``/_emulator/*``; hand every other request on."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    if request.path != CODE_PATH:
        return problem(404, "Not found")
    if request.method != "POST":
        return problem(405, "Method not allowed")
    return await issue_code(request)
