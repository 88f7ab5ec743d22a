"""Benchmark 5: parse speed and memory for the largest legal account, and whether orjson pays.

The account: 50 pipelines x 100 statuses (97 custom + incoming, won, lost), every custom
status with its 3 descriptions. It is built in an emulator with the limits off (by the SDK,
as in benchmark 2) and read back as raw bytes in the API's own shapes: the pipelines list
(``GET /api/v4/leads/pipelines``: every pipeline with its embedded statuses, which never
carry descriptions) and, per pipeline, ``GET .../statuses?with=descriptions``.

The SDK checks every description when it parses (a wrong type is an error from the call)
and, in an answer with more than 32 (every statuses list here), makes the objects on first
read (``models.Deferred``), so it is measured twice: bytes to models, and bytes to models
with every description then read. Memory is measured two
ways: the bytes the parsed models keep alive (tracemalloc), and the growth of the
process's resident set while parsing and keeping them, in a fresh process per parser
(``python -m benchmarks.parse --rss PARSER BODIES``), since a process that has parsed
before reuses freed memory and would show less growth.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aioamocrm import Pipeline as PeerPipeline
from aioamocrm import Status as PeerStatus

from amo_pipelines import AmoClient
from amo_pipelines.budget.limiter import RateLimiter
from amo_pipelines.emulator import Emulator, EmulatorConfig
from amo_pipelines.model import _json
from amo_pipelines.model._gcpause import PAUSE_ABOVE, parse_paused
from amo_pipelines.model.converter import converter
from amo_pipelines.model.models import PipelineCollection, StatusCollection

from . import parse_split
from .common import ROOT, Table
from .migration import new_pipelines, new_statuses

ROUNDS = 7
DISTINCT = parse_split.DISTINCT


@dataclass
class Bodies:
    pipelines: list[bytes]  # the pipelines list (one body, or none in a statuses-only run)
    statuses: list[bytes]
    split: dict[str, dict[str, float]] = field(default_factory=dict)  # parse_split.time_split

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


def sdk_read(loads: Loads) -> Callable[[Bodies], list[Any]]:
    """:func:`sdk_paused` (the shipped path), then every status's descriptions read (made,
    where deferred), with the collector on, as the caller's code reads them."""
    parse_only = sdk_paused(loads)

    def parse(bodies: Bodies) -> list[Any]:
        out = parse_only(bodies)
        for page in out:
            for item in page.embedded.statuses if hasattr(page.embedded, "statuses") else ():
                item.descriptions  # noqa: B018
        return out

    return parse


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


def paused(loads: Loads) -> Loads:
    """``loads`` under the rule client.fetch parses by: a body of PAUSE_ABOVE bytes or more
    is parsed with the cyclic collector paused (amo_pipelines.model._gcpause)."""

    def parse(body: bytes) -> Any:
        if len(body) < PAUSE_ABOVE:
            return loads(body)
        return parse_paused(lambda: loads(body))

    return parse


def sdk_paused(loads: Loads) -> Callable[[Bodies], list[Any]]:
    """:func:`sdk` exactly as client.fetch runs it: each body decoded and structured with
    the collector paused when it is PAUSE_ABOVE bytes or more."""
    pipelines = partial(converter.structure, cl=PipelineCollection)
    statuses = partial(converter.structure, cl=StatusCollection)

    def parse(bodies: Bodies) -> list[Any]:
        out: list[Any] = [paused(lambda b: pipelines(loads(b)))(b) for b in bodies.pipelines]
        out += [paused(lambda b: statuses(loads(b)))(b) for b in bodies.statuses]
        return out

    return parse


def distinct_times(bodies: Bodies) -> Bodies:
    """The account with a time of its own in every description's two dates (see
    :func:`benchmarks.parse_split.distinct_times`)."""
    return Bodies(bodies.pipelines, parse_split.distinct_times(bodies.statuses))


def only_pipelines(bodies: Bodies) -> Bodies:
    return Bodies(bodies.pipelines, [])


def only_statuses(bodies: Bodies) -> Bodies:
    return Bodies([], bodies.statuses)


# --------------------------------------------------------------------------- measuring


@dataclass
class Row:
    key: str  # json, orjson, sdk-json, sdk-orjson, sdk-read, peer
    name: str
    times: dict[str, list[float]]  # shape -> seconds, one per round
    retained: int
    peak: int
    rss: int  # resident set growth in a fresh process, bytes

    def best(self, shape: str) -> float:
        return min(self.times[shape])


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


def variants() -> list[tuple[str, str, Callable[[Bodies], list[Any]]]]:
    return [
        ("json", "json.loads only (no models)", loads_only(json.loads)),
        ("orjson", "orjson.loads only (no models)", loads_only(orjson.loads)),
        ("sdk-json", "amo_pipelines: json.loads + its converter", sdk(json.loads)),
        (
            "sdk-orjson",
            "amo_pipelines: orjson.loads + its converter, collector on",
            sdk(orjson.loads),
        ),
        (
            "orjson-paused",
            "orjson.loads only, collector paused as client.fetch pauses it",
            loads_only(paused(orjson.loads)),
        ),
        (
            "sdk-paused",
            "amo_pipelines as client.fetch parses: orjson + its converter, collector paused",
            sdk_paused(orjson.loads),
        ),
        (
            "sdk-read",
            "amo_pipelines as client.fetch parses, then every description read",
            sdk_read(orjson.loads),
        ),
        ("peer", "aioamocrm: json.loads + pydantic", peer(json.loads)),
    ]


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss_child(key: str, path: Path) -> None:
    """In a fresh process: parse ``path``'s bodies with parser ``key``, keep the result,
    print the resident set growth in bytes. Warmed up on the smallest body alone."""
    pipelines, statuses = pickle.loads(path.read_bytes())
    bodies = Bodies(pipelines, statuses)
    parse = dict((k, p) for k, _, p in variants())[key]
    parse(Bodies([], [min(statuses, key=len)]))  # hooks, validators: made, not measured
    gc.collect()
    before = _rss()
    models = parse(bodies)
    gc.collect()
    print(_rss() - before, len(models))


def _rss_growth(bodies: Bodies) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bodies.pickle"
        path.write_bytes(pickle.dumps((bodies.pipelines, bodies.statuses)))
        out = {}
        for key, _, _ in variants():
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.parse", "--rss", key, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=str(ROOT),
            )
            out[key] = int(done.stdout.split()[0])
    return out


def run_all() -> tuple[Bodies, list[Row], dict[str, int]]:
    bodies = asyncio.run(_build())
    shapes = {
        "pipelines list": only_pipelines(bodies),
        "50 statuses lists": only_statuses(bodies),
        "whole account": bodies,
    }
    shipped = shipped_key()
    chosen = variants()
    counts = _counts(bodies)
    for _key, _name, parse in chosen:
        parse(bodies)  # warm up (generated hooks, pydantic validators)
    # Every (variant, shape) is timed once per round, the rounds interleave the variants,
    # and the tables give the median and spread of the rounds: a burst of load from
    # elsewhere on the machine then spoils single samples, not a whole variant.
    times: dict[tuple[str, str], list[float]] = {}
    # The distinct-times account in rounds of its own, after the others: the decoders'
    # baseline depends on the allocator's state (orjson alone keeps 22 MB alive), and
    # a fourth shape in the same rounds moved the other columns' baseline by a tenth.
    for group in (shapes, {DISTINCT: distinct_times(bodies)}):
        for round_no in range(ROUNDS):
            print(f"  parse: {', '.join(group)}: round {round_no + 1}/{ROUNDS}", flush=True)
            for key, _name, parse in chosen:
                for shape, subset in group.items():
                    times.setdefault((key, shape), []).append(_once(parse, subset))
    shapes[DISTINCT] = distinct_times(bodies)
    bodies.split = {
        shape: parse_split.time_split(shapes[shape].pipelines, shapes[shape].statuses, ROUNDS)
        for shape in ("whole account", DISTINCT)
    }
    rss = _rss_growth(bodies)
    rows = []
    for key, name, parse in chosen:
        label = f"{name} (as shipped)" if key == shipped else name
        retained, peak = _memory(parse, bodies)
        row_times = {shape: times[(key, shape)] for shape in shapes}
        rows.append(Row(key, label, row_times, retained, peak, rss[key]))
    return bodies, rows, counts


def shipped_key() -> str:
    """The row that parses as client.fetch does: its decoder (amo_pipelines.model._json),
    the collector paused for large bodies."""
    return "sdk-paused" if _json.loads is orjson.loads else "sdk-json"


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


def _spread(values: list[float]) -> str:
    """Median in ms (min..max)."""
    return (
        f"{statistics.median(values) * 1000:.1f} "
        f"({min(values) * 1000:.1f}..{max(values) * 1000:.1f})"
    )


def _ratios(mine: Row, theirs: Row, shape: str) -> list[float]:
    """Per-round ratios (the two ran in the same round)."""
    return [a / b for a, b in zip(mine.times[shape], theirs.times[shape], strict=True)]


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


TARGET_PEER = 0.6
TARGET_ORJSON = 1.5


def tables(bodies: Bodies, rows: list[Row], counts: dict[str, int]) -> list[Table]:
    shapes = list(rows[0].times)
    t = Table(
        f"5. Parse speed: the largest legal account, bytes -> models, {ROUNDS} interleaved "
        "rounds (median, min..max), and the memory the parsed models hold",
        [
            "parser",
            *(f"{shape} ms" for shape in shapes),
            "models held MB (tracemalloc)",
            "RSS growth MB (fresh process)",
            "peak while parsing MB",
        ],
    )
    for row in rows:
        t.add(
            row.name,
            *(_spread(row.times[shape]) for shape in shapes),
            f"{row.retained / 1e6:.1f}",
            f"{row.rss / 1e6:.1f}",
            f"{row.peak / 1e6:.1f}",
        )
    by_key = {row.key: row for row in rows}
    shipped = by_key[shipped_key()]
    with_json, with_orjson = by_key["sdk-json"], by_key["sdk-orjson"]
    the_peer, j, o = by_key["peer"], by_key["json"], by_key["orjson"]
    whole = "whole account"
    saved = statistics.median(with_json.times[whole]) - statistics.median(with_orjson.times[whole])
    t.notes = [
        f"Input: {bodies.size / 1e6:.2f} MB of JSON: the pipelines list "
        f"({len(bodies.pipelines[0]) / 1e6:.2f} MB; {counts['pipelines']} pipelines, "
        f"{counts['embedded statuses']} embedded statuses) and {len(bodies.statuses)} "
        f"statuses lists with descriptions ({counts['statuses with descriptions']} statuses, "
        f"{counts['custom statuses']} custom, {counts['descriptions']} descriptions), "
        "rendered by the emulator. 'distinct times': the same account with a time of its own "
        "in every description's created_at and updated_at (the emulator stamps descriptions "
        "made together with one second; a real account's span years, and the SDK parses "
        "each distinct date string once).",
        "amo_pipelines = converter.structure(loads(body), PipelineCollection / "
        "StatusCollection) with amo_pipelines.model.converter.converter, what client.fetch does "
        "(with the pause below); "
        f"the SDK's own decoder (amo_pipelines.model._json.loads) is {_json.loads.__module__}. "
        "Every field is type-checked at parse time; the descriptions of an answer with more "
        "than 32 are made into StatusDescription objects on first read (the 'every "
        "description read' row reads them all). aioamocrm = Pipeline / Status "
        ".model_validate per item of _embedded, "
        "what its pipelines.list() / .statuses() do; its Status has no descriptions field, "
        "so descriptions stay untyped dicts in model_extra.",
        "client.fetch parses a body of 32 KiB or more with the cyclic collector paused "
        "(every body here but none of benchmark 3's): the rows 'as client.fetch parses' "
        "run that path (the shipped one, against which the targets are read), 'orjson.loads "
        "only, collector paused' the decoder under the same pause, so the two compare like "
        "with like; the other rows run with the collector on throughout.",
        "models held = tracemalloc's current size after parsing the whole account with the "
        "result kept (the input bytes excluded); peak = the highest point during the parse; "
        "RSS growth = VmRSS after minus before parsing the whole account and keeping the "
        "result, in a fresh process per parser (warmed up on one small body), so freed "
        "memory of earlier runs is not reused.",
    ]
    ratios = Table(
        "5b. Parse ratios, whole account, per round (median, min..max; > 1 means the first "
        "is slower)",
        ["comparison", "ratio", "target", "what it means"],
    )
    o_paused, read, on = by_key["orjson-paused"], by_key["sdk-read"], by_key["sdk-orjson"]
    # The shipped path against the decoder under the same pause, and against the peer as
    # it ships; then the converter and the decoder both with the collector on.
    for row, base, shape, target, meaning in (
        (shipped, the_peer, whole, TARGET_PEER, "memory"),
        (shipped, o_paused, whole, TARGET_ORJSON, "what the SDK adds to decoding"),
        (shipped, the_peer, DISTINCT, TARGET_PEER, ""),
        (shipped, o_paused, DISTINCT, TARGET_ORJSON, "dates distinct, as in a real account"),
        (read, the_peer, whole, TARGET_PEER, "memory"),
        (read, o_paused, whole, TARGET_ORJSON, "every description made"),
        (read, o_paused, DISTINCT, TARGET_ORJSON, "the same, dates distinct"),
        (on, o, whole, TARGET_ORJSON, "both with the collector on (not what fetch does)"),
        (on, o, DISTINCT, TARGET_ORJSON, "the same, dates distinct"),
    ):
        if meaning == "memory":
            meaning = (
                f"memory held {row.retained / max(base.retained, 1):.2f}, RSS growth "
                f"{row.rss / max(base.rss, 1):.2f} of the peer's"
            )
        label = ", distinct times" if shape == DISTINCT else ""
        ratios.add(
            f"{row.name} / {base.name}{label}",
            _ratio(_ratios(row, base, shape)),
            f"<= {target}",
            meaning,
        )
    ratios.add("json.loads / orjson.loads", _ratio(_ratios(j, o, whole)), "-", "decode alone")
    ratios.add(
        "amo_pipelines with json.loads / with orjson.loads",
        _ratio(_ratios(with_json, with_orjson, whole)),
        "-",
        f"orjson saves {saved * 1000:.1f} ms per full-account read",
    )
    per_request = saved / (1 + len(bodies.statuses)) * 1000
    ratios.notes = [
        f"Reading this account costs 51 requests, i.e. >= 6.3 s at 7 requests/s; orjson "
        f"saves {per_request:.2f} ms per request ({saved * 1000:.0f} ms per full read). "
        "Per call with limits off see tables 3 and 3b.",
    ]
    ratios.notes += parse_split.notes(bodies.split, counts, ROUNDS)
    return [t, ratios]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse")
    parser.add_argument("--rss", nargs=2, metavar=("PARSER", "BODIES"), required=True)
    args = parser.parse_args()
    _rss_child(args.rss[0], Path(args.rss[1]))
