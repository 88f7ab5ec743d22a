"""Benchmark 5's details: the account with distinct description times, and where the
SDK's parse time goes (decoding, structuring, reading every description, and the garbage
collections during each)."""

from __future__ import annotations

import gc
import time
from datetime import datetime, timedelta
from typing import Any

import orjson

from amo_pipelines.model.converter import converter
from amo_pipelines.model.models import PipelineCollection, StatusCollection

DISTINCT = "whole account, distinct times"


def distinct_times(statuses: list[bytes]) -> list[bytes]:
    """The statuses lists with a time of its own in every description's created_at and
    updated_at. The emulator stamps descriptions made together with the same second, so
    its answers share a few date strings; a real account's carry years of edits, and the
    SDK parses each distinct string once."""
    start, n, out = datetime(2019, 1, 1), 0, []
    for body in statuses:
        data = orjson.loads(body)
        for status in data["_embedded"]["statuses"]:
            for item in status.get("descriptions") or ():
                for key, offset in (("created_at", 0), ("updated_at", 11)):
                    when = start + timedelta(seconds=37 * n + offset)
                    item[key] = when.strftime("%Y-%m-%d %H:%M:%S")
                n += 1
        out.append(orjson.dumps(data))
    return out


class _GcClock:
    """Seconds spent in garbage collections while installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def time_split(pipelines: list[bytes], statuses: list[bytes], rounds: int) -> dict[str, float]:
    """Where the shipped SDK's time goes, best of ``rounds`` for each part: decoding,
    structuring (and the garbage collections during it), then reading every description
    (and its collections). A body is decoded and structured before the next, as
    client.fetch does; the decoded objects are freed as it goes."""
    best: dict[str, float] = {}
    work: list[tuple[bytes, type[Any]]] = [(b, PipelineCollection) for b in pipelines]
    work += [(b, StatusCollection) for b in statuses]
    for _ in range(rounds):
        gc.collect()
        clock = _GcClock()
        gc.callbacks.append(clock)
        try:
            decode = structure = structure_gc = 0.0
            pages: list[Any] = []
            for body, model in work:
                started = time.perf_counter()
                data = orjson.loads(body)
                decoded = time.perf_counter()
                before = clock.seconds
                pages.append(converter.structure(data, model))
                structure += time.perf_counter() - decoded
                structure_gc += clock.seconds - before
                decode += decoded - started
                del data
            before = clock.seconds
            started = time.perf_counter()
            for page in pages:
                for item in getattr(page.embedded, "statuses", ()):
                    item.descriptions  # noqa: B018
            read = time.perf_counter() - started
            read_gc = clock.seconds - before
        finally:
            gc.callbacks.remove(clock)
        del pages
        for name, value in (
            ("decode", decode),
            ("structure", structure),
            ("structure_gc", structure_gc),
            ("read", read),
            ("read_gc", read_gc),
        ):
            best[name] = min(best.get(name, value), value)
    return best


def notes(splits: dict[str, dict[str, float]], counts: dict[str, int], rounds: int) -> list[str]:
    """Table 5b's notes on :func:`time_split`'s results, one per shape."""
    out = [
        f"Where the SDK's time goes, {shape}, best of {rounds} (each body decoded, then "
        f"structured, as client.fetch does): decode {split['decode'] * 1000:.1f} ms, "
        f"structure {split['structure'] * 1000:.1f} ms (of which garbage collection "
        f"{split['structure_gc'] * 1000:.1f} ms), reading every description afterwards "
        f"{split['read'] * 1000:.1f} ms (of which garbage collection "
        f"{split['read_gc'] * 1000:.1f} ms)."
        for shape, split in splits.items()
    ]
    out.append(
        f"Structuring checks every field of {counts['embedded statuses']} + "
        f"{counts['statuses with descriptions']} statuses and {counts['descriptions']} "
        "descriptions and parses each distinct date string once (about 29,000 when every "
        "time is distinct); reading makes the description objects. The collections are "
        "set off by the objects made (every status is one) while the decoded answer is "
        "alive."
    )
    return out
