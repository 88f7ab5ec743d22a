"""Shared helpers: the environment, markdown tables, the result file, timing utilities."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"

# amoCRM's documented limits, which the emulator enforces by default.
TOKEN_RPS = 7
ACCOUNT_RPS = 50


def ideal_seconds(requests: int, rate: int = TOKEN_RPS) -> float:
    """The brief's ideal wall time for ``requests`` at ``rate`` per second: ``N / rate - 1``.

    The first window's burst of ``rate`` requests is free (they all start at t=0), so one
    window is taken off the naive ``N / rate``.
    """
    return requests / rate - 1.0


def slot_bound_seconds(requests: int, rate: int = TOKEN_RPS) -> float:
    """When the last of ``requests`` can start at the earliest: bursts of ``rate`` at
    t = 0, 1, 2, ... s, so at ``ceil(N / rate) - 1`` s (a lower bound that ignores latency).
    Always >= :func:`ideal_seconds`; the gap is under one window."""
    return math.ceil(requests / rate) - 1.0


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most arrivals inside any window ``(t - window, t]``, the emulator's definition."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quiet_logs() -> None:
    """The peer logs a WARNING per retried request; the tables say how many there were."""
    logging.getLogger("aioamocrm").setLevel(logging.ERROR)
    logging.getLogger("amo_pipelines").setLevel(logging.ERROR)


def record_grants(limiter: object) -> list[float] | None:
    """Record the time of every grant the SDK's rate limiter makes, without changing it.

    Benchmark-only instrumentation of a private attribute (``RateLimiter._store``): the
    store's ``acquire`` is wrapped on this instance, and the grant times (the limiter's
    clock, ``time.monotonic`` like the emulator's) are appended to the returned list.
    None (the tables then say n/a) if the SDK's internals no longer look like that.
    """
    store = getattr(limiter, "_store", None)
    acquire = getattr(store, "acquire", None)
    if acquire is None:
        return None
    grants: list[float] = []

    async def recording(windows: object, now: float) -> object:
        admission = await acquire(windows, now)
        at = getattr(admission, "at", None)  # a Granted; a Denied has retry_after instead
        if isinstance(at, float):
            grants.append(at)
        return admission

    store.acquire = recording
    shared = getattr(store, "acquire_account", None)
    if shared is not None:  # a store shared across processes (the machine-wide default)

        async def recording_shared(account: str, windows: object, rule: object) -> object:
            admission = await shared(account, windows, rule)
            at = getattr(admission, "at", None)
            if isinstance(at, float):
                grants.append(at)
            return admission

        store.acquire_account = recording_shared
    return grants


def grant_delays(grants: Sequence[float] | None, arrivals: Sequence[float]) -> list[float] | None:
    """Arrival minus grant for each request, pairing the sorted lists (None if the counts
    differ). Sorted pairing is exact for FIFO traffic and a fair estimate otherwise."""
    if grants is None or len(grants) != len(arrivals) or not grants:
        return None
    return [a - g for g, a in zip(sorted(grants), sorted(arrivals), strict=True)]


def delay_summary(delays: Sequence[float] | None, threshold: float = 0.02) -> str:
    """``median / max ms (how many over 20 ms)`` for the grant-to-arrival delays."""
    if delays is None:
        return "n/a"
    over = sum(d > threshold for d in delays)
    return f"{median(delays) * 1000:.1f} / {max(delays) * 1000:.1f} ({over})"


def limiter_design() -> str:
    """How the SDK's rate limiter counts, as found at run time (the code is changing)."""
    from amo_pipelines.budget import limiter as ratelimit

    margin = ratelimit.DEFAULT_MARGIN
    if hasattr(ratelimit.InMemoryWindowStore, "complete"):
        return (
            f"windows count a request from its answer (completion time), "
            f"margin {margin * 1000:.0f} ms"
        )
    return f"windows count a request from its grant, margin {margin * 1000:.0f} ms"


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([fmt(c) for c in cells])

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        parts = [f"### {self.title}", "", line(self.columns)]
        parts.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        parts += [line(row) for row in self.rows]
        if self.notes:
            parts.append("")
            parts += [f"- {note}" for note in self.notes]
        return "\n".join(parts)


def fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    return str(value)


class Results:
    """Collects every section, prints it as it comes, and keeps ``results.md`` current."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sections: list[str] = []

    def add(self, text: str) -> None:
        print(text, flush=True)
        print(flush=True)
        self.sections.append(text)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n\n".join(self.sections) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- environment


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                return text_line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_revision() -> str:
    """The checked-out commit, read-only (and whether the work tree has local changes)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (work tree modified)" if dirty else head


def environment() -> Table:
    table = Table("Environment", ["what", "value"])
    table.add("Python", f"{platform.python_implementation()} {sys.version.split()[0]}")
    table.add("platform", platform.platform())
    cpus = os.cpu_count()
    with contextlib.suppress(AttributeError):
        cpus = len(os.sched_getaffinity(0))
    table.add("CPUs usable", cpus)
    table.add("CPU", _cpu_model())
    table.add("amo_pipelines", f"{_version('amo-pipelines')} at {_git_revision()}")
    table.add("SDK rate limiter", limiter_design())
    for dist in ("aiohttp", "attrs", "cattrs", "yarl", "orjson", "aioamocrm", "httpx", "pydantic"):
        table.add(dist, _version(dist))
    return table


# --------------------------------------------------------------------------- emulator process


@dataclass
class EmulatorProcess:
    url: str
    admin_token: str


@contextlib.asynccontextmanager
async def emulator_process(*args: str) -> AsyncIterator[EmulatorProcess]:
    """``python -m amo_pipelines.emulator`` in its own process (its own core and GIL), so
    that timing the client is not mixed with serving. ``args`` go to its command line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "amo_pipelines.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        token_line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        found = re.search(r"listening on (\S+)", banner)
        if found is None or not token_line.startswith("admin token:"):
            raise RuntimeError(f"unexpected emulator output: {banner!r} {token_line!r}")
        yield EmulatorProcess(found.group(1), token_line.split(":", 1)[1].strip())
    finally:
        await stop_process(proc)


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """Terminate a server process started for a benchmark; kill it if it lingers."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A throwaway redis-server on a free loopback port (no persistence): its URL and pid."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with socket.socket() as conn:
                if conn.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        proc.terminate()
        proc.wait()
