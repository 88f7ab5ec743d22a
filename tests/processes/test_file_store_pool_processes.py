"""Places reserved ahead, across real processes: four worker processes hammer one token of
one account through the machine-wide store, with limits high enough that places are
reserved ahead (never binding, and binding within each window once its free places run
short), and with a 7-per-window limit that binds throughout.

Each worker records, per request, when its grant came back and when it was released;
the request held a place in the file over at least that span plus one period. Across all
processes no more than the limit may overlap at any instant (monotonic time is the
machine's, common to the processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import asyncio, json, random, sys, time
    from amo_pipelines import FileWindowStore, Limit, RateLimiter

    async def main() -> None:
        o = json.loads(sys.argv[1])
        store = FileWindowStore(o["directory"], lease=2.0)
        transactions = 0
        locked = store._locked

        def spy(*args):
            nonlocal transactions
            transactions += 1
            return locked(*args)

        store._locked = spy
        limiter = RateLimiter(
            integration_limit=Limit(o["count"], o["period"]),
            account_limit=Limit(o["count"] * 2, o["period"]),
            max_in_flight=None,
            store=store,
        )
        spans = []
        rng = random.Random(o["seed"])
        start = time.monotonic() + o["start_in"]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        end = start + o["seconds"]

        async def worker() -> None:
            while time.monotonic() < end:
                hold = await limiter.acquire("acme.amocrm.ru", "one-token")
                granted = time.monotonic()
                await asyncio.sleep(rng.random() * 0.002)  # the request is out
                answered = time.monotonic()
                await limiter.release(hold)
                spans.append((granted, answered))

        await asyncio.gather(*(worker() for _ in range(o["concurrency"])))
        await asyncio.sleep(0.05)
        store.close()
        print(json.dumps({"spans": spans, "transactions": transactions}), flush=True)

    asyncio.run(main())
    """
)


def run_workers(directory: Path, count: int, period: float, processes: int = 4) -> list[Any]:
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                json.dumps(
                    {
                        "directory": str(directory),
                        "count": count,
                        "period": period,
                        "concurrency": 8,
                        "seconds": 1.5,
                        "start_in": 1.5,  # every process imported and waiting
                        "seed": index,
                    }
                ),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        results.append(json.loads(out))
    return results


def most_held_at_once(spans: list[tuple[float, float]], period: float) -> int:
    """The most requests whose [grant, answer + period) overlap at one instant."""
    events = sorted(
        [(granted, 1) for granted, _ in spans] + [(answered + period, -1) for _, answered in spans]
    )  # (at equal times a place frees before the next is taken: -1 sorts first)
    most = held = 0
    for _, step in events:
        held += step
        most = max(most, held)
    return most


@pytest.mark.parametrize(
    ("count", "period", "binds", "pooled"),
    [
        pytest.param(10**6, 0.1, False, True, id="high-limit"),
        pytest.param(300, 0.1, True, None, id="reserved-ahead-then-binding"),
        pytest.param(7, 0.05, True, False, id="binding-7-per-window"),
    ],
)
def test_four_processes_never_hold_more_than_the_limit(
    tmp_path: Path, count: int, period: float, binds: bool, pooled: bool | None
) -> None:
    results = run_workers(tmp_path / "budget", count, period)
    spans = [(float(a), float(b)) for result in results for a, b in result["spans"]]
    grants = len(spans)
    transactions = sum(result["transactions"] for result in results)
    assert all(result["spans"] for result in results)  # every process got its share
    assert most_held_at_once(spans, period) <= count
    if binds:  # the processes used most of what the limit allows over 1.5 s
        assert grants >= 0.5 * count * 1.5 / period
    if pooled:
        assert transactions < grants / 2  # most grants took a place reserved ahead
    elif pooled is False:
        assert transactions >= grants  # one transaction per grant at least


EXITS = textwrap.dedent(
    """
    import asyncio, sys
    from amo_pipelines import FileWindowStore
    from amo_pipelines.budget.windows import Granted, PenaltyRule, Window

    async def main() -> None:
        store = FileWindowStore(sys.argv[1], lease=30.0)
        window = (Window("a|acme.amocrm.ru", 1000, 60.0),)
        rule = PenaltyRule(0.5, 0.1, 1.0, 1 / 64)
        for _ in range(4):
            assert isinstance(await store.acquire_account("acme.amocrm.ru", window, rule), Granted)

    asyncio.run(main())  # then the interpreter exits: no close(), the loop is gone
    """
)


def test_a_process_that_exits_without_closing_gives_its_reserved_places_back(
    tmp_path: Path,
) -> None:
    from amo_pipelines import FileWindowStore
    from amo_pipelines.budget._filestate import SUFFIX, load

    directory = tmp_path / "budget"
    subprocess.run([sys.executable, "-c", EXITS, str(directory)], cwd=ROOT, check=True)
    [path] = directory.glob(f"*{SUFFIX}")
    store = FileWindowStore(directory, lease=30.0)
    log = load(path.read_bytes(), store._boot).log(b"a|acme.amocrm.ru")
    assert log is not None and len(log.untils) == 4  # the four grants, pending; no more
    store.close()
