"""``python -m benchmarks [--only rate,migration,overhead,parse,copy,budget]``: run the suite.

Every table is printed as it is ready and collected in ``benchmarks/out/results.md``; the
rate chart goes to ``benchmarks/out/rate.png`` and the profiles to
``benchmarks/out/profile_sdk.txt``. Use ``benchmarks/run``, which sets up the environment.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from . import copy as copying
from . import fleet, migration, overhead, parse, peer, rate, shared_budget
from .common import OUT, Results, environment

BENCHMARKS = ("rate", "migration", "overhead", "parse", "copy", "budget", "fleet")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {', '.join(BENCHMARKS)} (default: all)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    started = time.perf_counter()
    results = Results(OUT / "results.md")
    results.add("# amo_pipelines benchmarks\n\n" + environment().render())

    rates = migrations = measured = parsed = None
    timings: list[str] = []
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings.append(f"{name} {now - mark:.0f} s")
        mark = now

    if "rate" in chosen:
        print("1. rate efficiency (each scenario is wall-clock bound, ~45 s) ...", flush=True)
        rates = rate.run_all()
        chart = OUT / "rate.png"
        rate.chart(rates, chart)
        table = rate.table(rates)
        table.notes.append(f"Chart of requests per second over time: out/{chart.name}.")
        results.add(table.render())
        lap("rate")
    if "migration" in chosen:
        print("2. migration ...", flush=True)
        migrations = migration.run_all()
        results.add(migration.table(migrations).render())
        lap("migration")
    if "overhead" in chosen:
        print("3. client overhead (+ 4a peer comparison) ...", flush=True)
        measured = overhead.run_all()
        profile_path = OUT / "profile_sdk.txt"
        overhead.write_profiles(measured, profile_path)
        for table in overhead.tables(measured, profile_path):
            results.add(table.render())
        lap("overhead")
    if "parse" in chosen:
        print("5. parse speed ...", flush=True)
        bodies, parsed, counts = parse.run_all()
        for table in parse.tables(bodies, parsed, counts):
            results.add(table.render())
        lap("parse")
    if "copy" in chosen:
        print("6. copy to 20 accounts ...", flush=True)
        results.add(copying.table(copying.run_all()).render())
        lap("copy")
    if "budget" in chosen:
        print("7. one budget across processes (file store and Redis, ~3 min) ...", flush=True)
        for table in shared_budget.run_all():
            results.add(table.render())
        lap("budget")
    if "fleet" in chosen:
        print("8. fleet copy on taskiq workers (~4 min) ...", flush=True)
        results.add(fleet.table(fleet.run_all()).render())
        lap("fleet")
    results.add(peer.summary(rates, migrations, measured, parsed).render())

    elapsed = time.perf_counter() - started
    results.add(f"_Suite ran in {elapsed:.0f} s ({', '.join(timings)})._")
    print(f"results: {results.path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
