"""Benchmark 4: amo_pipelines against aioamocrm 0.1.1, gathered from the other benchmarks'
runs (each measured the two side by side in the same run)."""

from __future__ import annotations

from . import migration, overhead, parse, rate
from .common import Table, median


def summary(
    rates: list[rate.Outcome] | None,
    migrations: list[migration.Outcome] | None,
    measured: overhead.Measured | None,
    parsed: list[parse.Row] | None,
) -> Table:
    t = Table(
        "4. Peer comparison summary: amo_pipelines / aioamocrm (same runs as 1, 2, 3, 5)",
        ["workload", "amo_pipelines", "aioamocrm 0.1.1", "SDK / peer", "note"],
    )
    if rates:
        sdk = next(o for o in rates if o.name == "amo_pipelines (a): 1 client")
        peer = next(o for o in rates if o.name.startswith("aioamocrm (a): its limiter"))
        t.add(
            "1. rate (a): 300 calls at 7/s, wall s",
            f"{sdk.wall:.2f} ({sdk.rate_limited} x 429)",
            f"{peer.wall:.2f} ({peer.rate_limited} x 429)",
            f"{sdk.wall / peer.wall:.3f}",
            "lower is better; peer spaces requests 1/7 s apart",
        )
        off = next(o for o in rates if o.name.startswith("aioamocrm (a): limiter off, default"))
        t.add(
            "1. rate (a), peer limiter off",
            "-",
            f"{off.rate_limited} x 429, blocked: {'yes' if off.blocked else 'no'}",
            "-",
            f"{sum(off.failures.values())} of {off.calls} calls failed",
        )
    if migrations:
        best = min(
            (o for o in migrations if o.name.startswith("amo_pipelines")), key=lambda o: o.wall
        )
        default = next(o for o in migrations if o.name == "amo_pipelines, defaults")
        peer_run = next(o for o in migrations if o.name.startswith("aioamocrm"))
        for sdk_run in (default, best):
            t.add(
                f"2. migration, wall s ({sdk_run.name.removeprefix('amo_pipelines, ')})",
                f"{sdk_run.wall:.2f} ({sdk_run.requests} requests)",
                f"{peer_run.wall:.2f} ({peer_run.requests} requests)",
                f"{sdk_run.wall / peer_run.wall:.2f}",
                "peer: no create API; hand-written on its generic request()",
            )
    if measured:
        for endpoint in overhead.ENDPOINTS:
            for mode in overhead.MODES:
                key = ("replay", endpoint.name, mode)
                cell = measured.cells.get((*key, "peer"))
                sdk_cell = measured.cells[(*key, "sdk")]
                if cell is None:
                    t.add(
                        f"3. {endpoint.name}, {mode}, calls/s (replay server)",
                        f"{median(sdk_cell.rates):,.0f}",
                        "not supported",
                        "-",
                        "no `with=descriptions` in the peer's API",
                    )
                    continue
                ratios = overhead.paired(measured, *key, "sdk", "peer")
                t.add(
                    f"3. {endpoint.name}, {mode}, calls/s (replay server)",
                    f"{median(sdk_cell.rates):,.0f}",
                    f"{median(cell.rates):,.0f}",
                    overhead.spread(ratios),
                    f"higher is better (target >= {overhead.TARGET_PEER[mode]:.0f}); peer on httpx",
                )
    if parsed:
        rows = {row.key: row for row in parsed}
        sdk_row, peer_row = rows[parse.shipped_key()], rows["peer"]
        for shape in ("pipelines list", "50 statuses lists", "whole account"):
            mine, theirs = median(sdk_row.times[shape]), median(peer_row.times[shape])
            t.add(
                f"5. parse {shape}, ms",
                f"{mine * 1000:.1f}",
                f"{theirs * 1000:.1f}",
                f"{mine / theirs:.2f}",
                "lower is better"
                + ("; peer leaves descriptions untyped" if shape != "pipelines list" else ""),
            )
        t.add(
            "5. memory held by the parsed account, MB (tracemalloc / RSS growth)",
            f"{sdk_row.retained / 1e6:.1f} / {sdk_row.rss / 1e6:.1f}",
            f"{peer_row.retained / 1e6:.1f} / {peer_row.rss / 1e6:.1f}",
            f"{sdk_row.retained / peer_row.retained:.2f} / "
            f"{sdk_row.rss / max(peer_row.rss, 1):.2f}",
            "lower is better",
        )
    return t
