"""Benchmark 3 (and the peer part of 4): what the SDK costs per call, with the rate limits off.

The emulator runs in its own process (``python -m amo_pipelines.emulator --rps off
--account-rps off``, i.e. ``EmulatorConfig(token_rps=None, account_rps=None)``), so the
client's process holds only the client: its calls/s and CPU time per call are not mixed
with serving. The SDK gets ``RateLimiter(integration_limit=None, account_limit=None,
max_in_flight=None)``; the baseline is a bare aiohttp session doing the same requests and
``json.loads`` of the body.

Two processes share two cores, so the speed of either drifts by 10-20 % over seconds.
The clients therefore run in short blocks (``BLOCK`` calls), one block each in turn
(the order rotates every round); a ratio is computed per round from the blocks run back
to back, and the table gives the median and the interquartile range of those ratios.
Each of the ``PAIRED_ROUNDS`` rounds visits every endpoint and mode, so that a burst of
load lands on a few rounds of every cell rather than on most rounds of one.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aioamocrm import AmoCRMClient
from aioamocrm import LongLivedToken as PeerToken

from amo_pipelines import AmoClient, _json
from amo_pipelines.converter import converter
from amo_pipelines.models import Pipeline, StatusCollection
from amo_pipelines.ratelimit import RateLimiter
from amo_pipelines.testing import MockTransport
from amo_pipelines.transport import Response

from .common import ROOT, Table, emulator_process, median, quiet_logs

MAIN = 3177727  # the seeded account's main pipeline (5 statuses, 3 descriptions)
BLOCK = 250  # calls per block
PEER_BLOCK = 50  # aioamocrm is ~3-9x slower here; shorter blocks keep the run short
PAIRED_ROUNDS = 20
CONCURRENCY = 16
PROFILED_CALLS = 2000
EMULATOR_ARGS = ("--rps", "off", "--account-rps", "off", "--seed", "1")

Call = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    query: dict[str, str] | None
    model: Any


ENDPOINTS = [
    Endpoint("pipelines.get", f"/api/v4/leads/pipelines/{MAIN}", None, Pipeline),
    Endpoint(
        "statuses.list(with_descriptions=True)",
        f"/api/v4/leads/pipelines/{MAIN}/statuses",
        {"with": "descriptions"},
        StatusCollection,
    ),
    Endpoint("statuses.list()", f"/api/v4/leads/pipelines/{MAIN}/statuses", None, StatusCollection),
]
MODES = ("sequential", f"{CONCURRENCY} concurrent")


@dataclass
class Cell:
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def no_limits() -> RateLimiter:
    return RateLimiter(integration_limit=None, account_limit=None, max_in_flight=None)


def sdk_call(amo: AmoClient, endpoint: Endpoint) -> Call:
    if endpoint.model is Pipeline:
        return lambda: amo.pipelines.get(MAIN)
    descriptions = endpoint.query is not None
    return lambda: amo.statuses.list(MAIN, with_descriptions=descriptions)


class Clients:
    """The three clients of one run, each with a call per endpoint (None: not supported)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/hal+json"}
        self.sdk = AmoClient(base_url=url, access_token=token, rate_limiter=no_limits())
        self.peer = AmoCRMClient(base_url=url, auth=PeerToken(token), rate_limit=None)

    async def aclose(self) -> None:
        await self.session.close()
        await self.sdk.aclose()
        await self.peer.aclose()

    def raw(self, endpoint: Endpoint) -> Call:
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
                return json.loads(body)

        return call

    def sdk_call(self, endpoint: Endpoint) -> Call:
        return sdk_call(self.sdk, endpoint)

    async def record(self, endpoint: Endpoint) -> Response:
        """The emulator's answer to ``endpoint``, to replay without a network."""
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
        if endpoint.query is None:
            return lambda: amo.pipelines.statuses(MAIN)
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
    cells: dict[tuple[str, str, str], Cell]
    decomposition: list[tuple[str, float, float, float, float]]
    profiles: list[Profile]


async def _measure() -> Measured:
    cells: dict[tuple[str, str, str], Cell] = {}
    async with emulator_process(*EMULATOR_ARGS) as emu:
        clients = Clients(emu.url, emu.admin_token)
        try:
            for endpoint in ENDPOINTS:  # warm up: connections, caches, cattrs hooks
                for warm in (clients.raw(endpoint), clients.sdk_call(endpoint)):
                    for _ in range(50):
                        await warm()
                peer = clients.peer_call(endpoint)
                if peer is not None:
                    for _ in range(50):
                        await peer()
            runs: dict[tuple[str, str], list[tuple[str, Call]]] = {}
            for endpoint in ENDPOINTS:
                calls: list[tuple[str, Call]] = [
                    ("raw", clients.raw(endpoint)),
                    ("sdk", clients.sdk_call(endpoint)),
                ]
                peer = clients.peer_call(endpoint)
                if peer is not None:
                    calls.append(("peer", peer))
                for mode in MODES:
                    runs[endpoint.name, mode] = calls
            # Every round visits every cell, so a burst of load from elsewhere (seconds
            # long on a shared machine) spreads over all cells instead of skewing one.
            for round_ in range(PAIRED_ROUNDS):
                for (name, mode), calls in runs.items():
                    shift = round_ % len(calls)
                    for who, call in calls[shift:] + calls[:shift]:
                        n = PEER_BLOCK if who == "peer" else BLOCK
                        rate, cpu_us = await _timed(call, mode, n)
                        cell = cells.setdefault((name, mode, who), Cell())
                        cell.rates.append(rate)
                        cell.cpu_us.append(cpu_us)
                if (round_ + 1) % 5 == 0:
                    print(f"  overhead: round {round_ + 1} of {PAIRED_ROUNDS} done", flush=True)
            decomposition = await _decompose(clients)
            profiles = await _profiles(clients)
        finally:
            await clients.aclose()
    return Measured(cells, decomposition, profiles)


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


_STRUCTURING = ("amo_pipelines/converter.py", "amo_pipelines/models.py")


def _component(filename: str, name: str) -> str:
    # Generated code is named after the class ("<cattrs generated structure
    # amo_pipelines.models.Status>"), so it is sorted out before the SDK's own files.
    if "cattrs" in filename or "cattrs" in name or filename.endswith(_STRUCTURING):
        return "structuring (cattrs hooks, generated and the SDK's converter.py)"
    if "attrs generated" in filename or "/attr/" in filename:
        return "attrs (__init__ of models and requests, converters)"
    if "amo_pipelines" in filename:
        return "amo_pipelines (request building, policies, limiter, fetch)"
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
    return "other"


@dataclass
class Profile:
    title: str
    calls: int
    total_us: float
    components: list[tuple[str, float, float]]
    top: list[tuple[str, int, float, float]]
    text: str


async def _profile(title: str, call: Call, calls: int) -> Profile:
    """cProfile ``calls`` sequential calls; self time grouped by component, and the top
    functions by self time, per call."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await call()
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
    components = [
        (component, seconds / calls * 1e6, seconds / total)
        for component, seconds in sorted(groups.items(), key=lambda kv: -kv[1])
    ]
    top = [(label, ncalls, tt / calls * 1e6, tt / total) for label, ncalls, tt in functions[:15]]
    text = io.StringIO()
    text.write(f"# {title}: {calls} calls\n")
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(60)
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
    return Profile(title, calls, total / calls * 1e6, components, top, text.getvalue())


async def _profiles(clients: Clients) -> list[Profile]:
    endpoint = ENDPOINTS[1]  # statuses.list(with_descriptions=True)
    over_network = await _profile(
        "amo_pipelines statuses.list(with_descriptions=True) against the emulator process",
        clients.sdk_call(endpoint),
        PROFILED_CALLS,
    )
    amo, transport = clients.replaying(await clients.record(endpoint))
    async with amo:
        call = sdk_call(amo, endpoint)

        async def forgetful() -> object:
            transport.requests.clear()
            return await call()

        no_network = await _profile(
            "amo_pipelines statuses.list(with_descriptions=True) over MockTransport (no network)",
            forgetful,
            5000,
        )
    return [over_network, no_network]


# --------------------------------------------------------------------------- tables


def run_all() -> Measured:
    quiet_logs()
    return asyncio.run(_measure())


def write_profiles(m: Measured, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(p.text for p in m.profiles), encoding="utf-8")


def _paired(m: Measured, endpoint: str, mode: str, who: str, base: str) -> list[float]:
    """Per-round ratios of calls/s (the two blocks ran back to back in the same round)."""
    mine, theirs = m.cells[(endpoint, mode, who)].rates, m.cells[(endpoint, mode, base)].rates
    return [a / b for a, b in zip(mine, theirs, strict=True)]


def _ratio(ratios: list[float]) -> str:
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{median(ratios):.2f} ({q1:.2f}..{q3:.2f})"


def tables(m: Measured, profile_path: Path) -> list[Table]:
    main = Table(
        f"3. Client overhead: limits off, {PAIRED_ROUNDS} rounds over every cell of "
        f"{BLOCK}-call blocks per client, run in turn (emulator in its own process)",
        [
            "endpoint",
            "mode",
            "raw aiohttp calls/s",
            "amo_pipelines calls/s",
            "SDK / raw: median (IQR)",
            "client CPU us/call raw / SDK",
            "SDK extra CPU us/call",
        ],
    )
    peer = Table(
        "4a. Peer comparison, same run: amo_pipelines vs aioamocrm (limits off)",
        [
            "endpoint",
            "mode",
            "amo_pipelines calls/s",
            "aioamocrm calls/s",
            "SDK / peer: median (IQR)",
            "client CPU us/call SDK / peer",
        ],
    )
    for endpoint in ENDPOINTS:
        for mode in MODES:
            raw = m.cells[(endpoint.name, mode, "raw")]
            sdk = m.cells[(endpoint.name, mode, "sdk")]
            raw_cpu, sdk_cpu = median(raw.cpu_us), median(sdk.cpu_us)
            main.add(
                endpoint.name,
                mode,
                median(raw.rates),
                median(sdk.rates),
                _ratio(_paired(m, endpoint.name, mode, "sdk", "raw")),
                f"{raw_cpu:.0f} / {sdk_cpu:.0f}",
                f"{sdk_cpu - raw_cpu:.0f}",
            )
            cell = m.cells.get((endpoint.name, mode, "peer"))
            if cell is None:
                peer.add(endpoint.name, mode, median(sdk.rates), "not supported", "-", "-")
                continue
            peer.add(
                endpoint.name,
                mode,
                median(sdk.rates),
                median(cell.rates),
                _ratio(_paired(m, endpoint.name, mode, "sdk", "peer")),
                f"{sdk_cpu:.0f} / {median(cell.cpu_us):.0f}",
            )
    main.notes = [
        "Target: SDK / raw >= 0.85. One ratio per round (the blocks ran back to back, the "
        "order rotated every round); the median and the interquartile range of the rounds. "
        "raw = aiohttp.ClientSession GET + "
        "read + json.loads, same connector limit (100) as the SDK's transport. The SDK "
        f"decodes with {_json.loads.__module__}.loads (amo_pipelines._json).",
        "Payload: the emulator's seeded main pipeline, 5 statuses, one of them with 3 "
        "descriptions (bodies 1.3-2.4 kB, see 3b).",
        "client CPU = time.process_time() of the benchmark process per call (the emulator's "
        "CPU is in the other process). With 2 cores the emulator process limits the "
        "concurrent rows; the CPU column is the figure that load does not blur.",
    ]
    peer.notes = [
        f"aioamocrm 0.1.1 (httpx + pydantic 2) with rate_limit=None; blocks of {PEER_BLOCK} "
        f"calls against the SDK's {BLOCK}. Its pipelines.statuses() sends no `with` "
        "parameter and its Status model has no descriptions field: statuses with "
        "descriptions are not supported by its API.",
    ]
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
        "chain (retry, throttle: limiter slot and circuit breaker, auth adding the header, "
        "logging), Response construction, fetch's checks and the watermark update."
    ]
    result = [main, decomposition]
    for i, profile in enumerate(m.profiles):
        components = Table(
            f"3{'cd'[i]}. cProfile, {profile.title}, {profile.calls} sequential calls: self "
            f"time by component ({profile.total_us:.0f} us/call under the profiler)",
            ["component", "self us/call", "share"],
        )
        for component, us, share in profile.components:
            components.add(component, f"{us:.1f}", f"{share:.0%}")
        top = Table(
            f"3{'cd'[i]}. (cont.) top 15 functions by self time",
            ["function", "calls", "self us/call", "share"],
        )
        for label, ncalls, us, share in profile.top:
            top.add(label, ncalls, f"{us:.1f}", f"{share:.1%}")
        top.notes = [f"Full listings (self and cumulative): out/{profile_path.name}."]
        result += [components, top]
    return [*result, peer]
