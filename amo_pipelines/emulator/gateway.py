"""The request gateway: every request is logged, then checked against the block, the rate
limits, authentication and the fault script before it reaches an endpoint."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from aiohttp import web
from attrs import define, field

from .config import EmulatorConfig
from .faults import (
    Fault,
    FaultInjector,
    FaultKind,
    blocked_page,
    drop_connection,
    proxy_error_page,
    too_many_requests_page,
)
from .limits import RateLimiter, round_up_ms
from .plans import ValidationFailed
from .records import RequestLogEntry, Stats
from .render import html, problem, validation_problem
from .rules import FieldRules
from .state import AccountState, StateError

logger = logging.getLogger("amo_pipelines.emulator")

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@define
class Runtime:
    """Everything the handlers share."""

    config: EmulatorConfig
    state: AccountState
    stats: Stats
    log: list[RequestLogEntry]
    limiter: RateLimiter
    faults: FaultInjector
    latency_rng: random.Random
    trace_rng: random.Random
    pending: set[asyncio.Task[web.Response]] = field(factory=set)
    """Late commits not applied yet."""
    fields: FieldRules = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.fields = FieldRules(self.config.max_name_length, self.config.sort_range)

    def trace_id(self) -> str:
        return f"{self.trace_rng.getrandbits(64):016x}"


RUNTIME = web.AppKey("amo_emulator_runtime", Runtime)


class Reply(Exception):
    """Short-circuits a handler with a ready response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


# --- the gateway ------------------------------------------------------------------------------


def _bearer(request: web.BaseRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _outcome(status: int) -> str:
    return "ok" if 200 <= status < 300 else str(status)


def _finish(
    rt: Runtime, entry: RequestLogEntry, response: web.Response, outcome: str | None = None
) -> web.Response:
    entry.status = response.status
    entry.outcome = outcome or _outcome(response.status)
    entry.finished_at = rt.config.clock()
    rt.stats.count_response(response.status)
    return response


def _drop(rt: Runtime, entry: RequestLogEntry, request: web.BaseRequest, *, reset: bool) -> None:
    entry.finished_at = rt.config.clock()
    drop_connection(request, reset=reset)


def _peer(request: web.BaseRequest) -> str | None:
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peername, tuple) or len(peername) < 2:
        return None
    host, port = peername[0], peername[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _token_kind(rt: Runtime, token: str | None) -> str | None:
    if token is None:
        return None
    info = rt.state.tokens.get(token)
    if info is None:
        return "other"
    return "admin" if info.admin else "user"


def _too_many(rt: Runtime, retry_after: float) -> web.Response:
    if rt.config.html_429:
        return html(429, too_many_requests_page())
    return problem(
        429,
        "Too many requests, slow down",
        retry_after=round_up_ms(retry_after),
    )


def _fault_response(rt: Runtime, fault: Fault) -> web.Response:
    code = fault.kind.status_code
    assert code is not None
    if code == 429:
        return _too_many(rt, fault.retry_after)
    if code == 500:
        return problem(500, "Internal server error", trace_id=rt.trace_id())
    return html(code, proxy_error_page(code))


async def admit(
    rt: Runtime, request: web.Request, *, token: str | None, now: float
) -> tuple[RequestLogEntry, web.Response | None]:
    """Log an arriving request and read its body; refuse it at once when the body is too
    large or the account is blocked (then the second item is the response to send)."""
    entry = RequestLogEntry(
        method=request.method,
        path=request.path,
        query=request.query_string,
        token=token,
        arrived_at=now,
        user_agent=request.headers.get("User-Agent"),
        peer=_peer(request),
        token_kind=_token_kind(rt, token),
    )
    rt.log.append(entry)
    rt.stats.requests += 1
    try:
        entry.body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return entry, _finish(rt, entry, problem(413, "Request body is too large"))
    if rt.limiter.blocked:
        rt.stats.blocked_requests += 1
        blocked = html(403, blocked_page(rt.config.subdomain))
        return entry, _finish(rt, entry, blocked, "blocked")
    return entry, None


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log, then: blocked? rate limits, auth, admin check, faults, latency, the handler."""
    rt = request.app[RUNTIME]
    now = rt.config.clock()
    token = _bearer(request)
    entry, refused = await admit(rt, request, token=token, now=now)
    if refused is not None:
        return refused
    retry_after = rt.limiter.check(token or "", now)
    if retry_after is not None:
        rt.stats.rate_limited += 1
        if rt.limiter.record_rejection(now):
            rt.stats.blocks += 1
            rt.stats.blocked = True
        return _finish(rt, entry, _too_many(rt, retry_after))

    if token is None:
        return _finish(rt, entry, problem(401, "Authorization header with a bearer token required"))
    info = rt.state.token_info(token, now)
    if info is None:
        detail = "Token has expired" if token in rt.state.tokens else "Token is invalid"
        return _finish(rt, entry, problem(401, detail))
    if request.method in WRITE_METHODS and not info.admin:
        return _finish(rt, entry, problem(403, "Account administrator rights required"))

    fault = rt.faults.pick(request.method, request.path)
    extra = 0.0 if rt.config.latency is None else rt.latency_rng.uniform(*rt.config.latency)
    return await apply_fault(
        rt, request, entry, fault, lambda: _call(rt, request, handler), extra_latency=extra
    )


Process = Callable[[], Awaitable[web.Response]]


async def apply_fault(
    rt: Runtime,
    request: web.Request,
    entry: RequestLogEntry,
    fault: Fault | None,
    process: Process,
    *,
    extra_latency: float = 0.0,
) -> web.StreamResponse:
    """Run ``process`` (the endpoint) under ``fault``, if any; return what to send."""
    arrived = asyncio.get_running_loop().time()
    instead = await fault_before(rt, request, entry, fault, extra_latency=extra_latency)
    if instead is not None:
        return instead
    if fault is not None and fault.kind is FaultKind.LATE_COMMIT:
        return await _late_commit(rt, request, entry, fault, process, arrived + fault.delay)
    return fault_after(rt, request, entry, fault, await process())


async def fault_before(
    rt: Runtime,
    request: web.Request,
    entry: RequestLogEntry,
    fault: Fault | None,
    *,
    extra_latency: float = 0.0,
) -> web.StreamResponse | None:
    """A fault's part before processing: latency, a reset, or a status sent *instead* of
    processing. Returns the response to send instead, or ``None`` to go on."""
    delay = extra_latency
    if fault is not None:
        rt.stats.count_fault(fault.kind.value)
        if fault.kind is FaultKind.LATENCY:
            delay += fault.delay
    if delay > 0:
        entry.latency = delay
        await asyncio.sleep(delay)
    if fault is None or fault.commit:
        return None
    if fault.kind is FaultKind.RESET:
        entry.outcome = fault.outcome
        _drop(rt, entry, request, reset=True)
        return web.Response(status=204)  # never sent: the connection is gone
    if fault.kind.status_code is not None:
        return _finish(rt, entry, _fault_response(rt, fault), fault.outcome)
    return None


def fault_after(
    rt: Runtime,
    request: web.Request,
    entry: RequestLogEntry,
    fault: Fault | None,
    response: web.Response,
) -> web.StreamResponse:
    """A fault's part after processing: drop the connection (commit-then-drop, a committed
    reset) or send the fault's status in place of the real answer (``commit=True``)."""
    if fault is None or fault.kind is FaultKind.LATENCY:
        return _finish(rt, entry, response)
    entry.processed_status = response.status
    rt.stats.count_commit(fault.kind.value)
    if fault.kind in (FaultKind.COMMIT_THEN_DROP, FaultKind.RESET):
        entry.outcome = fault.outcome
        _drop(rt, entry, request, reset=fault.kind is FaultKind.RESET)
        return response  # never sent
    return _finish(rt, entry, _fault_response(rt, fault), fault.outcome)


async def _late_commit(
    rt: Runtime,
    request: web.Request,
    entry: RequestLogEntry,
    fault: Fault,
    process: Process,
    due: float,
) -> web.StreamResponse:
    entry.outcome = fault.outcome
    # Its own task: aiohttp may cancel this handler when the client goes away, and the write
    # must happen anyway (that is the fault).
    task = asyncio.create_task(_apply_late(rt, entry, fault, process, due))
    rt.pending.add(task)
    task.add_done_callback(rt.pending.discard)
    if not fault.drop:
        try:
            response = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
        else:
            return _finish(rt, entry, response, fault.outcome)
    _drop(rt, entry, request, reset=False)
    return web.Response(status=204)  # never sent


async def _apply_late(
    rt: Runtime, entry: RequestLogEntry, fault: Fault, process: Process, due: float
) -> web.Response:
    await asyncio.sleep(max(due - asyncio.get_running_loop().time(), 0.0))
    response = await process()
    entry.processed_status = response.status
    rt.stats.count_commit(fault.kind.value)
    return response


async def _call(rt: Runtime, request: web.Request, handler: Handler) -> web.Response:
    try:
        response = await handler(request)
    except Reply as reply:
        return reply.response
    except ValidationFailed as exc:
        return validation_problem(exc.items)
    except StateError as exc:
        return problem(exc.status, exc.detail)
    except web.HTTPMethodNotAllowed:
        return problem(405, "Method not allowed")
    except web.HTTPNotFound:
        return problem(404, "Not found")
    except web.HTTPException as exc:  # pragma: no cover - no handler raises others
        return problem(exc.status, exc.reason)
    except Exception:
        logger.exception("emulator handler failed")
        rt.stats.internal_errors += 1
        return problem(500, "Internal emulator error", trace_id=rt.trace_id())
    assert isinstance(response, web.Response)
    return response
