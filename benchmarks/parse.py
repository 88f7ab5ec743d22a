"""Benchmark 5: parse speed and memory for the largest legal account, and whether orjson pays.

The account: 50 pipelines x 100 statuses (97 custom + incoming, won, lost), every custom
status with its 3 descriptions. It is built in an emulator with the limits off (by the SDK,
as in benchmark 2) and read back as raw bytes in the API's own shapes: the pipelines list
(``GET /api/v4/leads/pipelines``: every pipeline with its embedded statuses, which never
carry descriptions) and, per pipeline, ``GET .../statuses?with=descriptions``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aioamocrm import Pipeline as PeerPipeline
from aioamocrm import Status as PeerStatus

from amo_pipelines import AmoClient, _json
from amo_pipelines.converter import converter
from amo_pipelines.emulator import Emulator, EmulatorConfig
from amo_pipelines.models import PipelineCollection, StatusCollection
from amo_pipelines.ratelimit import RateLimiter

from .common import Table
from .migration import new_pipelines, new_statuses

ROUNDS = 7


@dataclass
class Bodies:
    pipelines: list[bytes]  # the pipelines list (one body, or none in a statuses-only run)
    statuses: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.pipelines + self.statuses)


async def _build() -> Bodies:
    config = EmulatorConfig(token_rps=None, account_rps=None, seed_account=False)
    async with Emulator(config) as emu:
        limiter = RateLimiter(integration_limit=None, account_limit=None, max_in_flight=None)
        async with AmoClient(
            base_url=emu.url, access_token=emu.admin_token, rate_limiter=limiter, batch_size=100
        ) as amo:
            created = await amo.pipelines.create(new_pipelines())
            targets = [emu.state.main_pipeline().id] + [p.id for p in created]
            await asyncio.gather(
                *(amo.statuses.create(pid, new_statuses(n)) for n, pid in enumerate(targets))
            )
        headers = {"Authorization": f"Bearer {emu.admin_token}"}
        base = f"{emu.url}/api/v4/leads/pipelines"
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(base) as response:
                pipelines = await response.read()
            statuses = []
            for pid in targets:
                async with session.get(
                    f"{base}/{pid}/statuses", params={"with": "descriptions"}
                ) as response:
                    statuses.append(await response.read())
    return Bodies([pipelines], statuses)


# --------------------------------------------------------------------------- parsers

Loads = Callable[[bytes], Any]


def sdk(loads: Loads) -> Callable[[Bodies], list[Any]]:
    """What PipelinesAPI.list / StatusesAPI.list do with a body (client.fetch)."""

    def parse(bodies: Bodies) -> list[Any]:
        out: list[Any] = [
            converter.structure(loads(b), PipelineCollection) for b in bodies.pipelines
        ]
        out += [converter.structure(loads(b), StatusCollection) for b in bodies.statuses]
        return out

    return parse


def _embedded(data: Any, key: str) -> list[Any]:
    # aioamocrm's embedded_items(): data["_embedded"][key] when it is a list
    items = data.get("_embedded", {}).get(key) if isinstance(data, dict) else None
    return items if isinstance(items, list) else []


def peer(loads: Loads) -> Callable[[Bodies], list[Any]]:
    """What aioamocrm's pipelines.list() / pipelines.statuses() do with a body."""

    def parse(bodies: Bodies) -> list[Any]:
        out: list[Any] = []
        for body in bodies.pipelines:
            out.append(
                [PeerPipeline.model_validate(x) for x in _embedded(loads(body), "pipelines")]
            )
        for body in bodies.statuses:
            out.append([PeerStatus.model_validate(x) for x in _embedded(loads(body), "statuses")])
        return out

    return parse


def loads_only(loads: Loads) -> Callable[[Bodies], list[Any]]:
    def parse(bodies: Bodies) -> list[Any]:
        return [loads(b) for b in bodies.pipelines + bodies.statuses]

    return parse


def only_pipelines(bodies: Bodies) -> Bodies:
    return Bodies(bodies.pipelines, [])


def only_statuses(bodies: Bodies) -> Bodies:
    return Bodies([], bodies.statuses)


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    key: str  # json, orjson, sdk-json, sdk-orjson, peer
    name: str
    times: dict[str, float]  # shape -> best seconds
    retained: int
    peak: int


def _once(parse: Callable[[Bodies], list[Any]], bodies: Bodies) -> float:
    gc.collect()
    started = time.perf_counter()
    parse(bodies)
    return time.perf_counter() - started


def _memory(parse: Callable[[Bodies], list[Any]], bodies: Bodies) -> tuple[int, int]:
    """(bytes still held by the parsed models, peak bytes while parsing), via tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        models = parse(bodies)
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del models
    return current - before, peak - before


def run_all() -> tuple[Bodies, list[Row], dict[str, int]]:
    bodies = asyncio.run(_build())
    shapes = {
        "pipelines list": only_pipelines(bodies),
        "50 statuses lists": only_statuses(bodies),
        "whole account": bodies,
    }
    shipped = shipped_key()
    variants = [
        ("json", "json.loads only (no models)", loads_only(json.loads)),
        ("orjson", "orjson.loads only (no models)", loads_only(orjson.loads)),
        ("sdk-json", "amo_pipelines: json.loads + its converter", sdk(json.loads)),
        ("sdk-orjson", "amo_pipelines: orjson.loads + its converter", sdk(orjson.loads)),
        ("peer", "aioamocrm: json.loads + pydantic", peer(json.loads)),
    ]
    counts = _counts(bodies)
    for _key, _name, parse in variants:
        parse(bodies)  # warm up (generated hooks, pydantic validators)
    # Every (variant, shape) is timed once per round, the rounds interleave the variants,
    # and each keeps its best round: a burst of load from elsewhere on the machine then
    # spoils single samples, not a whole variant.
    best: dict[tuple[str, str], float] = {}
    for round_no in range(ROUNDS):
        print(f"  parse: round {round_no + 1}/{ROUNDS}", flush=True)
        for key, _name, parse in variants:
            for shape, subset in shapes.items():
                seconds = _once(parse, subset)
                best[(key, shape)] = min(best.get((key, shape), seconds), seconds)
    rows = []
    for key, name, parse in variants:
        label = f"{name} (as shipped)" if key == shipped else name
        retained, peak = _memory(parse, bodies)
        times = {shape: best[(key, shape)] for shape in shapes}
        rows.append(Row(key, label, times, retained, peak))
    return bodies, rows, counts


def shipped_key() -> str:
    """Which decoder the SDK's client.fetch uses (amo_pipelines._json.loads)."""
    return "sdk-orjson" if _json.loads is orjson.loads else "sdk-json"


def _counts(bodies: Bodies) -> dict[str, int]:
    listing = converter.structure(_json.loads(bodies.pipelines[0]), PipelineCollection)
    statuses = [converter.structure(_json.loads(b), StatusCollection) for b in bodies.statuses]
    flat = [s for page in statuses for s in page.embedded.statuses]
    return {
        "pipelines": len(listing.embedded.pipelines),
        "embedded statuses": sum(len(p.statuses) for p in listing.embedded.pipelines),
        "statuses with descriptions": len(flat),
        "custom statuses": sum(1 for s in flat if not s.is_system),
        "descriptions": sum(len(s.descriptions or ()) for s in flat),
    }


def tables(bodies: Bodies, rows: list[Row], counts: dict[str, int]) -> list[Table]:
    shapes = list(rows[0].times)
    t = Table(
        "5. Parse speed: the largest legal account, bytes -> models (best of "
        f"{ROUNDS} interleaved rounds), and memory of the parsed models (tracemalloc)",
        [
            "parser",
            *(f"{shape} ms" for shape in shapes),
            "models held MB",
            "peak while parsing MB",
        ],
    )
    for row in rows:
        t.add(
            row.name,
            *(f"{row.times[shape] * 1000:.1f}" for shape in shapes),
            f"{row.retained / 1e6:.1f}",
            f"{row.peak / 1e6:.1f}",
        )
    by_key = {row.key: row for row in rows}
    shipped = by_key[shipped_key()]
    with_json, with_orjson = by_key["sdk-json"], by_key["sdk-orjson"]
    the_peer, j, o = by_key["peer"], by_key["json"], by_key["orjson"]
    whole = "whole account"
    saved = with_json.times[whole] - with_orjson.times[whole]
    t.notes = [
        f"Input: {bodies.size / 1e6:.2f} MB of JSON: the pipelines list "
        f"({len(bodies.pipelines[0]) / 1e6:.2f} MB; {counts['pipelines']} pipelines, "
        f"{counts['embedded statuses']} embedded statuses) and {len(bodies.statuses)} "
        f"statuses lists with descriptions ({counts['statuses with descriptions']} statuses, "
        f"{counts['custom statuses']} custom, {counts['descriptions']} descriptions), "
        "rendered by the emulator.",
        "amo_pipelines = converter.structure(loads(body), PipelineCollection / "
        "StatusCollection) with amo_pipelines.converter.converter, what client.fetch does; "
        f"the SDK's own decoder (amo_pipelines._json.loads) is {_json.loads.__module__}. "
        "aioamocrm = Pipeline / Status .model_validate per item of _embedded, what its "
        "pipelines.list() / .statuses() do; its Status has no descriptions field, so "
        "descriptions stay untyped dicts in model_extra (less work than typing them).",
        "models held = tracemalloc's current size after parsing the whole account with the "
        "result kept (the input bytes excluded); peak = the highest point during the parse.",
    ]
    ratios = Table(
        "5b. Parse ratios (whole account; > 1 means the first is slower)",
        ["comparison", "ratio", "what it means"],
    )
    ratios.add(
        "amo_pipelines as shipped / aioamocrm",
        f"{shipped.times[whole] / the_peer.times[whole]:.2f}",
        f"time; memory held {shipped.retained / max(the_peer.retained, 1):.2f}",
    )
    ratios.add(
        "json.loads / orjson.loads",
        f"{j.times[whole] / o.times[whole]:.2f}",
        "decode alone",
    )
    ratios.add(
        "amo_pipelines with json.loads / with orjson.loads",
        f"{with_json.times[whole] / with_orjson.times[whole]:.2f}",
        f"orjson saves {saved * 1000:.1f} ms of {with_json.times[whole] * 1000:.1f} ms "
        f"({saved / with_json.times[whole]:.0%}) per full-account read",
    )
    ratios.add(
        "share of json.loads in the SDK parse with json.loads",
        f"{j.times[whole] / with_json.times[whole]:.2f}",
        "the most a faster decoder could ever save",
    )
    per_request = saved / (1 + len(bodies.statuses)) * 1000
    ratios.notes = [
        f"Reading this account costs 51 requests, i.e. >= 6.3 s at 7 requests/s; orjson "
        f"saves {per_request:.2f} ms per request ({saved * 1000:.0f} ms per full read), "
        f"{saved / 6.29:.2%} of the rate-limited wall time. Per call with limits off see "
        "tables 3 and 3b.",
    ]
    return [t, ratios]
