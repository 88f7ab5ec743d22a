"""Benchmark 6's tables: the copy's totals and where its wall time goes (see ``copy``)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import copy_timeline
from .common import Table, fmt, ideal_seconds, slot_bound_seconds

if TYPE_CHECKING:
    from .copy import Run


def spread(values: list[float], digits: str = "") -> str:
    """``median [min..max]``."""
    show: Callable[[float], str] = (lambda v: f"{v:{digits}}") if digits else fmt
    if len(values) == 1:
        return show(values[0])
    return f"{show(statistics.median(values))} [{show(min(values))}..{show(max(values))}]"


class Tables(Table):
    """The main table, then the others (``python -m benchmarks`` renders one object)."""

    def __init__(self, first: Table, *others: Table) -> None:
        super().__init__(first.title, first.columns, first.rows, first.notes)
        self.others = others

    def render(self) -> str:
        return "\n\n".join([super().render(), *(t.render() for t in self.others)])


def table(rounds: list[list[Run]]) -> Table:
    t = Table(
        f"6. Copy: 50 pipelines x 97 statuses x 3 descriptions to 20 accounts, default "
        f"limits, one emulator process; median [min..max] of {len(rounds)} rounds",
        [
            "run",
            "requests / minimum",
            "wall s",
            "slot bound s",
            "wall / slot bound",
            "N / 7 s",
            "wall / (N / 7)",
            "N / 7 - 1 s",
            "wall / (N / 7 - 1)",
            "429s",
            "CPU s: client + server",
            "CPU s: other processes",
            "wall / reference",
            "target writes",
            "end state",
        ],
    )
    w = Table(
        "6b. Where the wall time goes (median [min..max] of the rounds)",
        [
            "run",
            "critical path: slots x 1 s + answer waits (the last one at)",
            "path: round trips s (server s)",
            "path: client lag s",
            "requests bound by an answer, not a slot: n (s)",
            "RTT ms: median / p90",
            "server ms: median",
            "up / down ms: median; up spent in other handlers",
            "client lag ms: median / p90",
            "busy: client / server",
            "client GC: full n (s) / young n (s) / longest ms",
        ],
    )
    for i, name in enumerate(r.name for r in rounds[0]):
        runs = [rnd[i] for rnd in rounds]
        r0 = runs[0]
        n = max(r0.minimum.values())
        ideal, bound = ideal_seconds(n), slot_bound_seconds(n)
        total = [sum(r.requests.values()) for r in runs]
        least = sum(r0.minimum.values())
        writes = Counter(w for r in runs for w in r.writes)
        t.add(
            name,
            f"{spread([float(x) for x in total], '.0f')} / {least}",
            spread([r.wall for r in runs]),
            bound,
            spread([r.wall / bound for r in runs], ".3f"),
            n / 7,
            spread([r.wall / (n / 7) for r in runs], ".3f"),
            ideal,
            spread([r.wall / ideal for r in runs], ".3f"),
            spread([float(r.rate_limited) for r in runs], ".0f"),
            f"{spread([r.cpu for r in runs], '.1f')} + {spread([r.served for r in runs], '.1f')}",
            spread([r.others for r in runs], ".1f"),
            spread([r.wall / rnd[0].wall for r, rnd in zip(runs, rounds, strict=True)], ".3f"),
            ", ".join(f"{k} x{c}" for k, c in sorted(writes.items())),
            "; ".join(sorted({r.verified for r in runs if r.verified}))
            or (
                "failed targets: " + str(sum(r.failures for r in runs))
                if any(r.failures for r in runs)
                else "-"
            ),
        )
        lines = [r.line for r in runs if r.line is not None]
        paths = [copy_timeline.critical_path(x) for x in lines]
        sums = [copy_timeline.summary(x) for x in lines]
        ms = 1000.0
        w.add(
            name,
            f"{spread([float(p.windows) for p in paths], '.0f')} + "
            f"{spread([float(p.hops) for p in paths], '.0f')} "
            f"(last at {spread([p.last_hop for p in paths], '.2f')} s)",
            f"{spread([p.rtt for p in paths], '.2f')} ({spread([p.server for p in paths], '.2f')})",
            spread([p.lag for p in paths], ".2f"),
            f"{spread([s['answer_bound'] for s in sums], '.0f')} "
            f"({spread([s['answer_wait'] for s in sums], '.1f')})",
            f"{spread([s['rtt_median'] * ms for s in sums], '.0f')} / "
            f"{spread([s['rtt_p90'] * ms for s in sums], '.0f')}",
            spread([s["server_median"] * ms for s in sums], ".1f"),
            f"{spread([s['up_median'] * ms for s in sums], '.1f')} / "
            f"{spread([s['down_median'] * ms for s in sums], '.1f')}; "
            f"{spread([s['up_busy_share'] for s in sums], '.2f')}",
            f"{spread([s['lag_median'] * ms for s in sums], '.1f')} / "
            f"{spread([s['lag_p90'] * ms for s in sums], '.0f')}",
            f"{spread([r.cpu / r.wall for r in runs], '.2f')} / "
            f"{spread([r.served / r.wall for r in runs], '.2f')}",
            f"{spread([float(r.collections.full) for r in runs], '.0f')} "
            f"({spread([r.collections.full_s for r in runs], '.2f')}) / "
            f"{spread([float(r.collections.young) for r in runs], '.0f')} "
            f"({spread([r.collections.young_s for r in runs], '.2f')}) / "
            f"{spread([r.collections.longest_s * ms for r in runs], '.0f')}",
        )
    t.notes = list(TOTAL_NOTES)
    w.notes = list(TIME_NOTES)
    return Tables(t, w)


TOTAL_NOTES = [
    "Every account (the source, the reference target, the 20 targets) is served by one "
    "emulator process (python -m amo_pipelines.emulator --accounts 22), a fresh one per "
    "round, each account with its own limits; the client runs in the benchmark's process. "
    "On 2 cores that is one core each. Until this version every account had a process of "
    "its own: 21 servers competing for one core made round trips of 50-140 ms.",
    "Minimum requests: source 51 (1 + 1 per pipeline), target 52 "
    "(its listing, 1 POST of 49 pipelines, 1 statuses POST per pipeline); a second copy "
    "needs the source's 51 and 51 per target (its listing and every pipeline's statuses "
    "with descriptions, to compare them), and writes nothing.",
    "N = the requests of the account with the most (52 for a target, 51 for a second copy). "
    "Slot bound = ceil(N / 7) - 1 s: when its N-th request may start at the earliest under "
    "7 per second with a free first burst of 7 (52 = 7 x 7 + 3: the 50th to 52nd start in "
    "the 8th second); no client honouring the limit ends before it plus one round trip. "
    "N / 7 s: the account's N requests at 7 per second, the ideal the issue names (1.05 x "
    "= 7.80 s for 52). N / 7 - 1 s: the fluid ideal of benchmark 1 (300 calls), where the "
    "free first second is a small share; for 52 requests it lies 0.57 s below the slot "
    "bound, so no client can come within 1.05 x of it (1.089 at best).",
    "CPU s: other processes = what the rest of the machine used during the copy "
    "(/proc/stat busy time minus client and server): a round with seconds there was "
    "disturbed (a test suite running at the same time) and its wall time says so.",
    "End state: every target exported and compared with the source (names, order, colors, "
    "descriptions); requests and 429s are counted by the clients' transports.",
]
TIME_NOTES = [
    "From both ends of every request: the client's transport (sent, answered) and the "
    "emulator's own log over HTTP (GET /_emulator/log: arrived, finished). A request is due "
    "when the SDK's limiter could grant it (it holds a place from the grant until 1 s after "
    "the answer, so an account's k-th request is due 1 s after the (k-7)-th earliest answer) "
    "and ready when the answers it needs are back (a statuses POST: the source's read of "
    "that pipeline, the target's listing and, for a new pipeline, the pipelines POST). "
    "The per-request timeline of the last round is in out/copy_timeline.json.",
    "critical path: from the last answer back, each step is a slot (1 s after an earlier "
    "answer of the same account) or an answer it waited for; wall = slots x 1 s + the "
    "path's round trips + its client lags, exactly. First copy, 7 slots + 2 answer waits, "
    "the last within the first few hundred ms: the chain that ended last waited for answers "
    "only at its start (the source's listing, then its read of the main pipeline) and was "
    "slot-bound from there on, so the copy leaves no due slot unused. Second copy, 1 answer "
    "wait: the target's own listing (50 pipelines with 97 statuses each, rendered for 21 "
    "accounts at once and parsed by one client), which every later request needs for its "
    "pipeline ids.",
    "requests bound by an answer: after each account's first 7, requests whose slot was "
    "due before the answers they needed (target statuses POSTs waiting for the source's "
    "read of their pipeline: the source reads at 7/s too, one request ahead); none is on "
    "the critical path.",
    "RTT split: up = sent -> the emulator's handler starts, server = the handler, down = "
    "handler done -> answer read by the client; 'up spent in other handlers' = the share "
    "of all up time during which the emulator ran other requests' handlers (the rest is the "
    "client's loop writing the request, the kernel and aiohttp's parsing). With 20 targets "
    "it is most of it: the round trip is the queue before the handler. The emulator process "
    "is busy under half of the wall time, but the targets' requests come bunched at their "
    "slot times (~140 POSTs of 97 statuses per second, ~2.5 ms of handler each plus "
    "aiohttp), and since its windows count a request when the handler starts, that queue "
    "delays every slot: one server process is the bottleneck of its round trips. client "
    "lag = sent - max(due, ready): the SDK's own delay (parsing, planning, the event loop).",
    "Lower bound: 7 s of slots + 2 round trips before the first statuses POST + 7 x (round "
    "trip + lag), since each slot opens 1 s after an answer; the reference row is that with "
    "an idle server. The 20-target rows add the server's queueing to every round trip.",
    "busy = CPU seconds / wall of the client and of the emulator process.",
    "client GC: CPython's cyclic collector in the client during the copy (gc.callbacks): "
    "full collections, younger ones, and the longest single pause; every pause stops the "
    "event loop and delays the requests due meanwhile. Before large answers were parsed with "
    "the collector paused and batches stopped leaving their results in the context of tasks "
    "started meanwhile, the first copy ran 10-11 full collections (0.6-0.9 s, up to 156 ms "
    "each) and ~1,400 younger ones (0.3-0.4 s).",
]
