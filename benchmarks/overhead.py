"""Benchmark 3 (and the peer part of 4): what the SDK costs per call, measured fairly.

Servers, each in its own process so that the client's process holds only the client:

* the **replay server** (:mod:`benchmarks.replay`, the headline): answers the emulator's
  recorded bodies by path, doing nothing per request but parse its head, so the client is
  what limits the rate (its CPU per call is the figure to read);
* the **emulator** (``python -m amo_pipelines.emulator --rps off --account-rps off``): it
  spends about as much CPU per call as a client, so on two cores its rows are
  server-bound and squeezed toward 1 at 16 concurrent; kept for continuity.

Clients, all on aiohttp with a connector limit of 100: ``raw+orjson`` (GET, read,
``orjson.loads``: the headline baseline, the decoder the SDK uses), ``raw+json``
(``json.loads``), the SDK with limits off (``RateLimiter(integration_limit=None,
account_limit=None, max_in_flight=None)``), the SDK with its default limiter on but not
binding (the default store, the default ``max_in_flight`` of 16, and integration and
account limits of 10^9 per second, so it counts every request and never waits), and
aioamocrm (httpx, ``rate_limit=None``).

Two processes share two cores, so the speed of either drifts by 10-20 % over seconds.
The clients therefore run in short blocks (``BLOCK`` calls), one block each in turn
(the order rotates every round); a ratio is computed per round from the blocks run back
to back, and the tables give the median and the spread of those ratios. Each of the
``PAIRED_ROUNDS`` rounds visits every server, endpoint and mode, so that a burst of load
lands on a few rounds of every cell rather than on most rounds of one.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import io
import json
import os
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aioamocrm import AmoCRMClient
from aioamocrm import LongLivedToken as PeerToken

from amo_pipelines import AmoClient
from amo_pipelines.budget.limiter import Limit, RateLimiter
from amo_pipelines.budget.windows import InMemoryWindowStore, WindowStore
from amo_pipelines.model import _json
from amo_pipelines.model.converter import converter
from amo_pipelines.model.models import Pipeline, PipelineCollection, StatusCollection
from amo_pipelines.testing import MockTransport
from amo_pipelines.transport import Response

from .common import ROOT, Table, emulator_process, median, quiet_logs
from .replay import replay_process

MAIN = 3177727  # the seeded account's main pipeline (5 statuses, 3 descriptions)
BLOCK = 200  # calls per block
PEER_BLOCK = 40  # aioamocrm is ~4-10x slower here; shorter blocks keep the run short
PAIRED_ROUNDS = int(os.environ.get("OVERHEAD_ROUNDS", "12"))  # fewer for a quick look
CONCURRENCY = 16
PROFILED_CALLS = 2000
EMULATOR_ARGS = ("--rps", "off", "--account-rps", "off", "--seed", "1")
HIGH = 10**9  # a limit that never binds

Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    query: dict[str, str] | None
    model: Any

    @property
    def target(self) -> str:
        """The request target as the clients send it (path and query string)."""
        return self.path + (
            "?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else ""
        )


ENDPOINTS = [
    Endpoint("pipelines.get", f"/api/v4/leads/pipelines/{MAIN}", None, Pipeline),
    Endpoint("pipelines.list", "/api/v4/leads/pipelines", None, PipelineCollection),
    Endpoint(
        "statuses.list(with_descriptions=True)",
        f"/api/v4/leads/pipelines/{MAIN}/statuses",
        {"with": "descriptions"},
        StatusCollection,
    ),
]
MODES = ("sequential", f"{CONCURRENCY} concurrent")
SERVERS = ("replay", "emulator")
SERVER_NAMES = {
    "replay": "static replay server (headline)",
    "emulator": "emulator (server-bound)",
}
CLIENTS = {
    "raw": "raw aiohttp + orjson",
    "raw-json": "raw aiohttp + json.loads",
    "raw-typed": "raw aiohttp + orjson + the SDK's models (the typed floor)",
    "sdk": "amo_pipelines, limits off",
    "sdk-limiter": "amo_pipelines, default limiter, not binding",
    "sdk-memory": "amo_pipelines, default limiter on an in-process store, not binding",
    "peer": "aioamocrm 0.1.1",
}


@dataclass
class Cell:
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def no_limits() -> RateLimiter:
    return RateLimiter(integration_limit=None, account_limit=None, max_in_flight=None)


def high_limits(store: WindowStore | None = None) -> RateLimiter:
    """The default limiter (default store, in-flight cap of 16, margin) with counts so high
    that no request ever waits: what it costs to count.

    The windows are short (1 ms for the integration, 5 ms for the account) so that they
    hold about as many grants at this benchmark's 3,000-9,000 calls/s as the default
    windows hold at their own limits (7 and 50 per second): a store's work per grant grows
    with what its windows hold, and 10^9 per second would make them hold every call of
    the last second."""
    return RateLimiter(
        integration_limit=Limit(HIGH, 0.001),
        account_limit=Limit(HIGH, 0.005),
        store=store,
    )


def sdk_call(amo: AmoClient, endpoint: Endpoint) -> Call:
    if endpoint.model is Pipeline:
        return lambda: amo.pipelines.get(MAIN)
    if endpoint.model is PipelineCollection:
        return amo.pipelines.list
    descriptions = endpoint.query is not None

    async def statuses() -> object:
        listed = await amo.statuses.list(MAIN, with_descriptions=descriptions)
        for status in listed:  # read: descriptions are made on first read
            status.descriptions  # noqa: B018
        return listed

    return statuses


class Clients:
    """The clients of one server, each with a call per endpoint (None: not supported)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/hal+json"}
        self.sdk = AmoClient(base_url=url, access_token=token, rate_limiter=no_limits())
        self.sdk_limiter = AmoClient(base_url=url, access_token=token, rate_limiter=high_limits())
        self.sdk_memory = AmoClient(
            base_url=url, access_token=token, rate_limiter=high_limits(InMemoryWindowStore())
        )
        self.peer = AmoCRMClient(base_url=url, auth=PeerToken(token), rate_limit=None)

    async def aclose(self) -> None:
        await self.session.close()
        await self.sdk.aclose()
        await self.sdk_limiter.aclose()
        await self.sdk_memory.aclose()
        await self.peer.aclose()

    def raw(self, endpoint: Endpoint, loads: Callable[[bytes], Any] = orjson.loads) -> Call:
        url, params, headers, session = (
            self.url + endpoint.path,
            endpoint.query,
            self.headers,
            self.session,
        )

        async def call() -> object:
            async with session.get(url, params=params, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"raw GET {url}: {response.status}")
                return loads(body)

        return call

    def typed(self, endpoint: Endpoint) -> Call:
        """The raw call, its JSON then given to the SDK's structuring hook and unwrapped and
        read as the SDK's call returns and reads it: the floor of any client that gives
        these typed models, with no request path of its own (no policies, no checks). The
        hook runs inside the raw call's own coroutine: no frame is added."""
        model = endpoint.model
        hook = converter.get_structure_hook(model)

        def pipeline(body: bytes) -> object:
            return hook(orjson.loads(body), model)

        def pipelines(body: bytes) -> object:
            return list(hook(orjson.loads(body), model).embedded.pipelines)

        def statuses(body: bytes) -> object:
            items = list(hook(orjson.loads(body), model).embedded.statuses)
            for status in items:
                status.descriptions  # noqa: B018
            return items

        typed = {Pipeline: pipeline, PipelineCollection: pipelines, StatusCollection: statuses}
        return self.raw(endpoint, typed[model])

    def calls(self, endpoint: Endpoint) -> list[tuple[str, Call]]:
        calls = [
            ("raw", self.raw(endpoint)),
            ("raw-json", self.raw(endpoint, json.loads)),
            ("raw-typed", self.typed(endpoint)),
            ("sdk", sdk_call(self.sdk, endpoint)),
            ("sdk-limiter", sdk_call(self.sdk_limiter, endpoint)),
            ("sdk-memory", sdk_call(self.sdk_memory, endpoint)),
        ]
        peer = self.peer_call(endpoint)
        if peer is not None:
            calls.append(("peer", peer))
        return calls

    async def record(self, endpoint: Endpoint) -> Response:
        """The server's answer to ``endpoint``."""
        async with self.session.get(
            self.url + endpoint.path, params=endpoint.query, headers=self.headers
        ) as response:
            body = await response.read()
            return Response(status=response.status, headers=dict(response.headers), body=body)

    def replaying(self, recorded: Response) -> tuple[AmoClient, MockTransport]:
        """An SDK client (limits off) whose transport answers everything with ``recorded``."""
        transport = MockTransport(lambda _request: recorded)
        amo = AmoClient(
            base_url=self.url,
            access_token=self.token,
            transport=transport,
            rate_limiter=no_limits(),
        )
        return amo, transport

    def peer_call(self, endpoint: Endpoint) -> Call | None:
        amo = self.peer
        if endpoint.model is Pipeline:
            return lambda: amo.pipelines.get(MAIN)
        if endpoint.model is PipelineCollection:
            return amo.pipelines.list
        return None  # pipelines.statuses() takes no `with`; its Status has no descriptions


async def _timed(call: Call, mode: str, n: int) -> tuple[float, float]:
    """(calls per second, client CPU microseconds per call) for ``n`` calls."""
    started, cpu = time.perf_counter(), time.process_time()
    if mode == "sequential":
        for _ in range(n):
            await call()
    else:
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                await call()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


@dataclass
class Measured:
    cells: dict[tuple[str, str, str, str], Cell]  # (server, endpoint, mode, client)
    sizes: dict[str, int]  # endpoint -> body bytes
    decomposition: list[tuple[str, float, float, float, float]]
    profiles: list[Profile]
    layers: dict[tuple[str, str], list[float]]


async def _warm(clients: Clients) -> None:
    for endpoint in ENDPOINTS:  # connections, caches, cattrs hooks, pydantic validators
        for _who, call in clients.calls(endpoint):
            for _ in range(30):
                await call()


async def _measure() -> Measured:
    cells: dict[tuple[str, str, str, str], Cell] = {}
    async with emulator_process(*EMULATOR_ARGS) as emu:
        emulated = Clients(emu.url, emu.admin_token)
        try:
            recorded = {e.target: await emulated.record(e) for e in ENDPOINTS}
            sizes = {e.name: len(recorded[e.target].body) for e in ENDPOINTS}
            answers = {
                target: (r.status, r.headers.get("content-type", "application/json"), r.body)
                for target, r in recorded.items()
            }
            async with replay_process(answers) as replay_url:
                replayed = Clients(replay_url, emu.admin_token)
                try:
                    by_server = {"replay": replayed, "emulator": emulated}
                    for clients in by_server.values():
                        await _warm(clients)
                    runs = {
                        (server, endpoint.name, mode): clients.calls(endpoint)
                        for server, clients in by_server.items()
                        for endpoint in ENDPOINTS
                        for mode in MODES
                    }
                    # Every round visits every cell, so a burst of load from elsewhere
                    # (seconds long on a shared machine) spreads over all cells.
                    for round_ in range(PAIRED_ROUNDS):
                        for (server, name, mode), calls in runs.items():
                            shift = round_ % len(calls)
                            for who, call in calls[shift:] + calls[:shift]:
                                n = PEER_BLOCK if who == "peer" else BLOCK
                                rate, cpu_us = await _timed(call, mode, n)
                                cell = cells.setdefault((server, name, mode, who), Cell())
                                cell.rates.append(rate)
                                cell.cpu_us.append(cpu_us)
                        if (round_ + 1) % 3 == 0:
                            print(
                                f"  overhead: round {round_ + 1} of {PAIRED_ROUNDS} done",
                                flush=True,
                            )
                    layers = await _layers(replayed)
                    profiles = await _profiles(replayed)
                finally:
                    await replayed.aclose()
            decomposition = await _decompose(emulated)
        finally:
            await emulated.aclose()
    return Measured(cells, sizes, decomposition, profiles, layers)


# --------------------------------------------------------------------------- where the time goes


ROUNDS = 9  # interleaved rounds of the no-network split; the best of each is kept
ROUND_CALLS = 1000


def _per_call_us(fn: Callable[[], object], n: int = ROUND_CALLS) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


async def _decompose(clients: Clients) -> list[tuple[str, float, float, float, float]]:
    """Per endpoint, microseconds per call without any network: the SDK's loads of the
    recorded body, converter.structure of it, and the whole SDK call over a MockTransport
    that returns the recorded response. The three are measured in turn, ROUNDS times, and
    each keeps its best round, so a burst of load from elsewhere hits none of them for good."""
    rows = []
    for endpoint in ENDPOINTS:
        recorded = await clients.record(endpoint)
        body, model = recorded.body, endpoint.model
        data = _json.loads(body)
        amo, transport = clients.replaying(recorded)
        async with amo:
            call = sdk_call(amo, endpoint)
            for _ in range(200):
                await call()
            loads_us = structure_us = whole_us = float("inf")
            for _ in range(ROUNDS):
                loads_us = min(loads_us, _per_call_us(lambda body=body: _json.loads(body)))
                structure_us = min(
                    structure_us,
                    _per_call_us(lambda data=data, model=model: converter.structure(data, model)),
                )
                transport.requests.clear()
                started = time.perf_counter()
                for _ in range(ROUND_CALLS):
                    await call()
                whole_us = min(whole_us, (time.perf_counter() - started) / ROUND_CALLS * 1e6)
            transport.requests.clear()
        rows.append((endpoint.name, len(body), loads_us, structure_us, whole_us))
    return rows


_STRUCTURING = (
    "amo_pipelines/model/converter.py",
    "amo_pipelines/model/models.py",
    "amo_pipelines/model/_fast.py",
    "amo_pipelines/model/_descriptions.py",
    "amo_pipelines/model/_keys.py",
)
_LIMITER = ("amo_pipelines/http/circuit.py",)


def _component(filename: str, name: str) -> str:
    # Generated code is named after the class ("<cattrs generated structure
    # amo_pipelines.model.models.Status>"), so it is sorted out before the SDK's own files.
    if "cattrs" in filename or "cattrs" in name or filename.endswith(_STRUCTURING):
        return "structuring (cattrs hooks, generated and the SDK's converter.py)"
    if "attrs generated" in filename or "/attr/" in filename:
        return "attrs (__init__ of models and requests, converters)"
    if filename.endswith(_LIMITER) or "amo_pipelines/budget/" in filename:
        return "amo_pipelines rate limiter and breaker (budget/, circuit)"
    if "amo_pipelines" in filename:
        return "amo_pipelines (request building, policies, fetch, transport)"
    if "/aiohttp/" in filename:
        return "aiohttp client"
    if "/yarl/" in filename or "/multidict/" in filename or "/propcache/" in filename:
        return "yarl / multidict"
    if "json" in filename or "json" in name:
        return "JSON decode / encode (json, orjson)"
    if "socket" in name or "epoll" in name or "poll" in name:
        return "socket I/O and epoll (kernel)"
    if "asyncio" in filename or "selectors" in filename:
        return "asyncio event loop"
    if "fcntl" in name or "flock" in name or "posix" in name or "os." in name:
        return "file locks and I/O (os, fcntl)"
    return "other"


@dataclass
class Profile:
    title: str
    calls: int
    total_us: float
    components: dict[str, float]  # component -> self us per call
    top: list[tuple[str, int, float, float]]
    text: str


async def _profile(title: str, call: Call, calls: int, mode: str = "sequential") -> Profile:
    """cProfile ``calls`` calls (sequential, or CONCURRENCY workers); self time grouped by
    component, and the top functions by self time, per call."""
    profiler = cProfile.Profile()
    profiler.enable()
    await _timed(call, mode, calls)
    profiler.disable()
    raw_stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw_stats.values())
    groups: dict[str, float] = {}
    functions = []
    for (filename, line, name), (_cc, ncalls, tottime, _ct, _callers) in raw_stats.items():
        component = _component(filename, name)
        groups[component] = groups.get(component, 0.0) + tottime
        short = filename.split("site-packages/")[-1].split(f"{ROOT}/")[-1]
        short = (
            short.split("/lib/python3")[-1].split("/", 1)[-1] if "/lib/python3" in short else short
        )
        label = f"{short}:{line}({name})" if line else name
        functions.append((label, ncalls, tottime))
    functions.sort(key=lambda f: -f[2])
    components = {component: seconds / calls * 1e6 for component, seconds in groups.items()}
    top = [(label, ncalls, tt / calls * 1e6, tt / total) for label, ncalls, tt in functions[:15]]
    text = io.StringIO()
    text.write(f"# {title}: {calls} calls\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(60)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
    return Profile(title, calls, total / calls * 1e6, components, top, text.getvalue())


PROFILED = ENDPOINTS[2]  # statuses.list(with_descriptions=True)


async def _profiles(clients: Clients) -> list[Profile]:
    """Against the replay server at 16 concurrent: raw+orjson, the SDK with limits off and
    with the limiter on; then the SDK over a MockTransport (no network at all)."""
    calls = dict(clients.calls(PROFILED))
    mode = MODES[1]
    out = [
        await _profile(
            f"{CLIENTS[who]}, {PROFILED.name}, replay server, {mode}",
            calls[who],
            PROFILED_CALLS,
            mode,
        )
        for who in ("raw", "sdk", "sdk-limiter")
    ]
    amo, transport = clients.replaying(await clients.record(PROFILED))
    async with amo:
        call = sdk_call(amo, PROFILED)

        async def forgetful() -> object:
            transport.requests.clear()
            return await call()

        out.append(
            await _profile(
                f"amo_pipelines {PROFILED.name} over MockTransport (no network), sequential",
                forgetful,
                5000,
            )
        )
    return out


LAYER_ROUNDS = 10
LAYERS = (
    ("raw aiohttp + orjson", "raw"),
    ("SDK transport alone (AiohttpTransport.send of a built Request) + orjson", "transport"),
    ("+ BatchStopPolicy, LoggingPolicy", "batch"),
    ("+ ThrottlePolicy (limiter slot, circuit breaker, close gate)", "throttle"),
    ("+ AuthPolicy (token, signed Request)", "auth"),
    ("+ RetryPolicy = the client's policy chain, composed policy by policy", "retry"),
    ("the client's own handler: the same chain, its first attempt in one frame", "handler"),
    ("AmoClient.request (URL, Request, status check) + orjson", "request"),
    ("AmoClient.fetch (+ loads, checks, converter.structure)", "fetch"),
    ("amo.pipelines.get (+ path, watermark): the SDK call", "sdk"),
)


async def _layers(clients: Clients) -> dict[tuple[str, str], list[float]]:
    """Client CPU per call of ``pipelines.get`` against the replay server, the SDK taken
    apart layer by layer (benchmark-only use of the client's private ``_policies``,
    ``_transport``, ``_handler``, ``_headers`` and ``_url``); interleaved rounds, so each
    layer's figure is comparable with the one above it."""
    from amo_pipelines.http.chain import chain
    from amo_pipelines.transport.base import Request, new_request

    endpoint = ENDPOINTS[0]
    amo = clients.sdk
    policies, transport = amo._policies, amo._transport
    await amo.pipelines.get(MAIN)
    # The request as the client builds it: its sealed header set, signed once per client.
    request = new_request("GET", amo._url(endpoint.path, ()), amo._headers)

    def over(handler: Callable[[Request], Awaitable[Response]]) -> Call:
        async def call() -> object:
            return orjson.loads((await handler(request)).body)

        return call

    async def request_only() -> object:
        return orjson.loads((await amo.request("GET", endpoint.path)).body)

    calls: dict[str, Call] = {
        "raw": clients.raw(endpoint),
        "transport": over(chain([], transport)),
        "batch": over(chain(policies[3:], transport)),
        "throttle": over(chain(policies[2:], transport)),
        "auth": over(chain(policies[1:], transport)),
        "retry": over(chain(policies, transport)),
        "handler": over(amo._handler),
        "request": request_only,
        "fetch": lambda: amo.fetch("GET", endpoint.path, Pipeline),
        "sdk": sdk_call(amo, endpoint),
    }
    for call in calls.values():
        for _ in range(100):
            await call()
    out: dict[tuple[str, str], list[float]] = {}
    for _ in range(LAYER_ROUNDS):
        for mode in MODES:
            for key, call in calls.items():
                out.setdefault((mode, key), []).append((await _timed(call, mode, BLOCK))[1])
    return out


# --------------------------------------------------------------------------- tables


def run_all() -> Measured:
    quiet_logs()
    return asyncio.run(_measure())


def write_profiles(m: Measured, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(p.text for p in m.profiles), encoding="utf-8")


def paired(m: Measured, server: str, endpoint: str, mode: str, who: str, base: str) -> list[float]:
    """Per-round ratios of calls/s (the two blocks ran back to back in the same round)."""
    mine = m.cells[(server, endpoint, mode, who)].rates
    theirs = m.cells[(server, endpoint, mode, base)].rates
    return [a / b for a, b in zip(mine, theirs, strict=True)]


def spread(ratios: list[float]) -> str:
    """Median (interquartile range; min..max)."""
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{median(ratios):.2f} ({q1:.2f}..{q3:.2f}; {min(ratios):.2f}..{max(ratios):.2f})"


TARGET_RAW = 0.85
TARGET_PEER = {"sequential": 4.0, MODES[1]: 10.0}


def _mark(value: float, target: float) -> str:
    return "" if value >= target else " (below)"


def tables(m: Measured, profile_path: Path) -> list[Table]:
    result = []
    for server in SERVERS:
        t = Table(
            f"3{'' if server == 'replay' else 'e'}. Client overhead against the "
            f"{SERVER_NAMES[server]}: {PAIRED_ROUNDS} rounds of {BLOCK}-call blocks per client "
            f"(aioamocrm {PEER_BLOCK}), in turn; calls/s and ratios per round",
            [
                "endpoint",
                "mode",
                "calls/s raw+orjson / raw+json / typed floor / SDK off / SDK limiter / "
                "SDK limiter in-process",
                "SDK off / raw+orjson: median (IQR; min..max)",
                "SDK limiter / raw+orjson",
                "SDK limiter in-process / raw+orjson",
                "typed floor / raw+orjson",
                "SDK off / typed floor",
                "SDK limiter / typed floor",
                "raw+json / raw+orjson",
                "client CPU us/call raw+orjson / raw+json / typed floor / SDK off / "
                "SDK limiter / in-process",
            ],
        )
        for endpoint in ENDPOINTS:
            for mode in MODES:
                cell = {
                    who: m.cells[(server, endpoint.name, mode, who)]
                    for who in ("raw", "raw-json", "raw-typed", "sdk", "sdk-limiter", "sdk-memory")
                }

                of = functools.partial(paired, m, server, endpoint.name, mode)
                off, on = of("sdk", "raw"), of("sdk-limiter", "raw")
                t.add(
                    endpoint.name,
                    mode,
                    " / ".join(f"{median(c.rates):,.0f}" for c in cell.values()),
                    spread(off) + (_mark(median(off), TARGET_RAW) if server == "replay" else ""),
                    spread(on) + (_mark(median(on), TARGET_RAW) if server == "replay" else ""),
                    spread(of("sdk-memory", "raw")),
                    spread(of("raw-typed", "raw")),
                    spread(of("sdk", "raw-typed")),
                    spread(of("sdk-limiter", "raw-typed")),
                    spread(of("raw-json", "raw")),
                    " / ".join(f"{median(c.cpu_us):.0f}" for c in cell.values()),
                )
        t.notes = [
            f"Target (replay server only): SDK / raw+orjson >= {TARGET_RAW} in every row, "
            "limits off and limiter on; '(below)' marks a median under it. One ratio per round "
            "(the two blocks ran back to back, the order of the clients rotated every round).",
            "raw = aiohttp.ClientSession GET + read + orjson.loads (or json.loads), connector "
            f"limit 100 like the SDK's transport. The SDK decodes with {_json.loads.__module__}. "
            "statuses.list(with_descriptions=True) reads every status's descriptions after "
            "the call (the SDK makes them on first read), so that cost is in the SDK's rows.",
            "typed floor = the raw+orjson call, then the SDK's own structuring hook for the "
            "answer's model (converter.get_structure_hook), the list unwrapped and, for "
            "statuses, the descriptions read, exactly as the SDK's call returns them: what "
            "any client pays to hand back these typed, checked models, with no request path "
            "of its own (no auth, limiter, retry, error mapping). 'typed floor / raw+orjson' "
            "is the most an SDK returning these models can score; 'SDK / typed floor' is "
            "what the SDK's request path costs on top of it.",
            "Payload: the emulator's seeded account, one pipeline (the main one) of 5 statuses, "
            "one with 3 descriptions; body bytes: "
            + ", ".join(f"{name} {size}" for name, size in m.sizes.items())
            + ".",
            "SDK limiter = the default RateLimiter (its default window store, the machine-wide "
            "file store; max_in_flight 16) with counts of 1e9 in windows of 1 ms "
            "(integration) and 5 ms (account): every request is counted and none waits, and "
            "the windows hold about as many grants as the default 7/s and 50/s windows do. "
            "SDK limiter in-process = the same on an InMemoryWindowStore (what the limiter "
            "itself costs, without the machine-wide store). client CPU = "
            "time.process_time() of the benchmark process per call (each server runs in a "
            "process of its own).",
        ]
        if server == "emulator":
            t.notes.append(
                "Server-bound: the emulator spends about as much CPU per call as a client; "
                "with two cores its concurrent rows are squeezed toward 1 and say more about "
                "the server than the client."
            )
        result.append(t)
    decomposition = Table(
        "3b. Where the SDK's time goes without a network (MockTransport replaying the "
        f"emulator's response), us per call, best of {ROUNDS} interleaved rounds of "
        f"{ROUND_CALLS} calls",
        [
            "endpoint",
            "body bytes",
            f"{_json.loads.__module__}.loads (the SDK's)",
            "converter.structure",
            "whole SDK call",
            "rest of the SDK",
        ],
    )
    for name, size, loads_us, structure_us, whole_us in m.decomposition:
        decomposition.add(
            name,
            size,
            f"{loads_us:.1f}",
            f"{structure_us:.1f}",
            f"{whole_us:.1f}",
            f"{whole_us - loads_us - structure_us:.1f}",
        )
    decomposition.notes = [
        "rest of the SDK = request building (yarl URL, headers, attrs Request), the policy "
        "chain (retry, auth adding the header, throttle: limiter slot and circuit breaker, "
        "logging), Response construction, fetch's checks, the watermark update and, for "
        "statuses with descriptions, making the descriptions on first read."
    ]
    result.append(decomposition)
    layered = Table(
        f"3c. Where the client's CPU goes, layer by layer: pipelines.get against the replay "
        f"server, client CPU us per call, median of {LAYER_ROUNDS} interleaved rounds of "
        f"{BLOCK}-call blocks (min..max)",
        ["layer", *(f"{mode} us/call" for mode in MODES), *(f"{mode}: added" for mode in MODES)],
    )
    previous: dict[str, float] = {}
    for label, key in LAYERS:
        values = [m.layers[(mode, key)] for mode in MODES]
        here = [median(v) for v in values]
        added = [
            "-" if mode not in previous else f"{h - previous[mode]:+.1f}"
            for mode, h in zip(MODES, here, strict=True)
        ]
        layered.add(
            label,
            *(f"{median(v):.1f} ({min(v):.0f}..{max(v):.0f})" for v in values),
            *added,
        )
        previous = dict(zip(MODES, here, strict=True))
    layered.notes = [
        "Each layer runs the same GET with everything below it: the transport alone gets "
        "a Request built once (with the client's header set, signed once per client), the "
        "policy rows add the client's own policies innermost first (its limiter here is "
        "the limits-off one, as in the 'SDK off' rows). The client's own handler runs the "
        "same policies, but a first attempt that waits for nothing in one coroutine "
        "(http.build.FirstAttempt); its row is compared with the composed chain above it. "
        "'added' = this layer's median minus the one above it; medians of separately "
        "timed blocks, so a small negative step is noise.",
    ]
    result.append(layered)
    names = sorted(
        {c for p in m.profiles for c in p.components},
        key=lambda c: -max(p.components.get(c, 0.0) for p in m.profiles),
    )
    compared = Table(
        "3d. Where the client's CPU goes (cProfile, self time by component, us per call): "
        + "; ".join(f"({i + 1}) {p.title}" for i, p in enumerate(m.profiles)),
        ["component", *(f"({i + 1})" for i in range(len(m.profiles)))],
    )
    for name in names:
        compared.add(name, *(f"{p.components.get(name, 0.0):.1f}" for p in m.profiles))
    compared.add("total under the profiler", *(f"{p.total_us:.1f}" for p in m.profiles))
    compared.notes = [
        "The profiler roughly doubles the time of every Python function call, so compare "
        "columns with each other rather than with the CPU figures of table 3. "
        f"Full listings (self and cumulative): out/{profile_path.name}.",
    ]
    result.append(compared)
    for i, profile in enumerate(m.profiles[1:], start=2):
        top = Table(
            f"3d.{i}. top 15 functions by self time: {profile.title}",
            ["function", "calls", "self us/call", "share"],
        )
        for label, ncalls, us, share in profile.top:
            top.add(label, ncalls, f"{us:.1f}", f"{share:.1%}")
        result.append(top)
    peer = Table(
        "4a. Peer comparison, same run: amo_pipelines (limits off) vs aioamocrm (rate_limit=None)",
        [
            "server",
            "endpoint",
            "mode",
            "calls/s SDK / aioamocrm",
            "SDK / aioamocrm: median (IQR; min..max)",
            "client CPU us/call SDK / aioamocrm",
        ],
    )
    for server in SERVERS:
        for endpoint in ENDPOINTS:
            for mode in MODES:
                sdk = m.cells[(server, endpoint.name, mode, "sdk")]
                cell = m.cells.get((server, endpoint.name, mode, "peer"))
                if cell is None:
                    peer.add(server, endpoint.name, mode, "not supported", "-", "-")
                    continue
                ratios = paired(m, server, endpoint.name, mode, "sdk", "peer")
                target = TARGET_PEER[mode]
                peer.add(
                    server,
                    endpoint.name,
                    mode,
                    f"{median(sdk.rates):,.0f} / {median(cell.rates):,.0f}",
                    spread(ratios) + (_mark(median(ratios), target) if server == "replay" else ""),
                    f"{median(sdk.cpu_us):.0f} / {median(cell.cpu_us):.0f}",
                )
    peer.notes = [
        "Targets (replay server): SDK / aioamocrm >= 4 sequential and >= 10 at 16 concurrent. "
        f"aioamocrm 0.1.1 (httpx + pydantic 2), blocks of {PEER_BLOCK} calls. Its "
        "pipelines.statuses() sends no `with` parameter and its Status model has no "
        "descriptions field: statuses with descriptions are not supported by its API.",
    ]
    result.append(peer)
    return result
