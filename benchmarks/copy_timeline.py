"""Where a copy's wall time goes: each account's requests as a chain of slots and answers.

Every request of a copy is known from both ends: the client's transport notes when it was
sent and when its answer was back, the emulator's log (``GET /_emulator/log``) when it
arrived and when the handler finished. From those, per request:

* ``due``: when the SDK's limiter could grant it at the earliest. The limiter holds a place
  from the grant until one window after the answer (``WindowStore.complete``), so with 7
  places the account's k-th request (k >= 8, in send order) is due when the (k-7)-th
  earliest release (answer + 1 s) among its earlier requests comes;
* ``ready``: when the copy could issue it at the earliest, i.e. when the answers it needs
  were back (a target's pipelines POST needs its own listing and the source's; a statuses
  POST also needs the source's read of that pipeline and, for a new pipeline, the pipelines
  POST; a source's statuses read needs the source's listing);
* ``lag``: sent - max(due, ready), the client's own delay (event loop, parsing, planning);
* the round trip split into up (sent -> arrived: client write, kernel, server accept and
  event loop), server (arrived -> finished: the handler) and down (finished -> answered:
  server write, client read).

The critical path walks back from the last answer: each step is either a slot (1 s after an
earlier answer on the same account) or a dependency (an answer the request needed, maybe on
another account), so wall = windows x 1 s + the round trips and lags on the path.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WINDOW = 1.0
PLACES = 7
LISTING = "/api/v4/leads/pipelines"


@dataclass
class Req:
    account: str
    method: str
    path: str
    sent: float
    answered: float
    arrived: float | None = None
    finished: float | None = None
    due: float = 0.0
    ready: float = 0.0
    slot_of: int | None = None
    """Index (same account) of the request whose release made this one due."""
    needs: tuple[str, int] | None = None
    """(account, index) of the answer this request waited for last."""

    @property
    def start(self) -> float:
        return max(self.due, self.ready)

    @property
    def lag(self) -> float:
        return self.sent - self.start

    @property
    def rtt(self) -> float:
        return self.answered - self.sent

    @property
    def server(self) -> float:
        if self.arrived is None or self.finished is None:
            return 0.0
        return self.finished - self.arrived

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "method": self.method,
            "path": self.path,
            "sent": round(self.sent, 4),
            "arrived": None if self.arrived is None else round(self.arrived, 4),
            "finished": None if self.finished is None else round(self.finished, 4),
            "answered": round(self.answered, 4),
            "due": round(self.due, 4),
            "ready": round(self.ready, 4),
            "bound_by": "slot" if self.due >= self.ready else "answer",
        }


@dataclass
class Timeline:
    accounts: dict[str, list[Req]] = field(default_factory=dict)

    def all(self) -> list[Req]:
        return [r for reqs in self.accounts.values() for r in reqs]


def _statuses_pipeline(path: str) -> int | None:
    parts = path.rstrip("/").split("/")
    if len(parts) == 7 and parts[-1] == "statuses" and parts[-2].isdigit():
        return int(parts[-2])
    return None


def build(
    times: Mapping[str, Sequence[tuple[str, str, float, float]]],
    server: Mapping[str, Sequence[dict[str, Any]]],
    source_of: Mapping[str, Mapping[int, int]],
    existing: Mapping[str, set[int]],
) -> Timeline:
    """``times``: per account (``"source"`` and the targets' labels) each request's (method,
    path, sent, answered), seconds from the copy's start; ``server``: per account its
    ``/_emulator/log`` entries with ``arrived_at``/``finished_at`` already moved to the same
    origin; ``source_of``: per target, target pipeline id -> source pipeline id;
    ``existing``: per target, the pipeline ids its listing showed."""
    line = Timeline()
    for account, reqs in times.items():
        ordered = sorted(reqs, key=lambda r: r[2])
        line.accounts[account] = [Req(account, m, p, s, a) for m, p, s, a in ordered]
        queues: dict[tuple[str, str], deque[dict[str, Any]]] = defaultdict(deque)
        for entry in server.get(account, ()):
            queues[(entry["method"], entry["path"])].append(entry)
        for req in line.accounts[account]:
            queue = queues.get((req.method, req.path))
            if queue:
                entry = queue.popleft()
                req.arrived, req.finished = entry["arrived_at"], entry["finished_at"]
        _slots(line.accounts[account])
    _dependencies(line, source_of, existing)
    return line


def _slots(reqs: list[Req]) -> None:
    releases: list[tuple[float, int]] = []
    for k, req in enumerate(reqs):
        if k >= PLACES:
            releases.sort()
            req.due, req.slot_of = releases[k - PLACES]
        releases.append((req.answered + WINDOW, k))


def _dependencies(
    line: Timeline, source_of: Mapping[str, Mapping[int, int]], existing: Mapping[str, set[int]]
) -> None:
    src = line.accounts.get("source", [])
    src_listing = _first(src, "GET", LISTING)
    reads = {
        pid: i
        for i, r in enumerate(src)
        if r.method == "GET" and (pid := _statuses_pipeline(r.path)) is not None
    }
    for i, r in enumerate(src):
        if i != src_listing and src_listing is not None:
            _need(r, line, ("source", src_listing))
    for account, reqs in line.accounts.items():
        if account == "source":
            continue
        mine = _first(reqs, "GET", LISTING)
        created = _first(reqs, "POST", LISTING)
        for i, r in enumerate(reqs):
            if i == mine:
                continue
            needs = [(account, mine)] if mine is not None else []
            if src_listing is not None:
                needs.append(("source", src_listing))
            pid = _statuses_pipeline(r.path)
            if r.method == "POST" and pid is not None:
                read = reads.get(source_of.get(account, {}).get(pid, -1))
                if read is not None:
                    needs.append(("source", read))
                if pid not in existing.get(account, set()) and created is not None:
                    needs.append((account, created))
            for need in needs:
                _need(r, line, need)


def _first(reqs: Sequence[Req], method: str, path: str) -> int | None:
    return next((i for i, r in enumerate(reqs) if r.method == method and r.path == path), None)


def _need(req: Req, line: Timeline, need: tuple[str, int]) -> None:
    answered = line.accounts[need[0]][need[1]].answered
    if answered > req.ready:
        req.ready, req.needs = answered, need


@dataclass
class Path:
    account: str
    end: float
    windows: int = 0
    hops: int = 0
    """Steps on the path that waited for a needed answer rather than a slot."""
    last_hop: float = 0.0
    """When the latest of those answers came (seconds from the start)."""
    rtt: float = 0.0
    server: float = 0.0
    lag: float = 0.0
    first_start: float = 0.0
    requests: int = 0
    nodes: list[Req] = field(default_factory=list)
    """The path's requests, last first."""

    def accounts(self) -> Counter[str]:
        return Counter("source" if r.account == "source" else "target" for r in self.nodes)


def critical_path(line: Timeline) -> Path:
    """The chain of slots and answers that ended last."""
    account = max(
        line.accounts, key=lambda a: max((r.answered for r in line.accounts[a]), default=0)
    )
    reqs = line.accounts[account]
    index = max(range(len(reqs)), key=lambda i: reqs[i].answered)
    path = Path(account, reqs[index].answered)
    node: tuple[str, int] | None = (account, index)
    while node is not None:
        req = line.accounts[node[0]][node[1]]
        path.nodes.append(req)
        path.requests += 1
        path.rtt += req.rtt
        path.server += req.server
        path.lag += req.lag
        if req.start <= 0.0:
            path.first_start = req.start
            break
        if req.due >= req.ready and req.slot_of is not None:
            path.windows += 1
            node = (node[0], req.slot_of)
        else:
            path.hops += 1
            path.last_hop = max(path.last_hop, req.ready)
            node = req.needs
    return path


def _busy_between(line: Timeline) -> Callable[[float, float], float]:
    """Seconds the emulator spent in handlers (of any account) within ``[a, b]``: its
    handlers run one at a time, so the union of their intervals is its busy time."""
    spans = sorted(
        (r.arrived, r.finished)
        for r in line.all()
        if r.arrived is not None and r.finished is not None
    )
    merged: list[tuple[float, float]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    starts = [a for a, _ in merged]
    before = [0.0]
    for a, b in merged:
        before.append(before[-1] + b - a)

    def busy_until(t: float) -> float:
        i = bisect.bisect_right(starts, t)
        if i == 0:
            return 0.0
        a, b = merged[i - 1]
        return before[i - 1] + min(t, b) - a

    return lambda a, b: max(busy_until(b) - busy_until(a), 0.0)


def summary(line: Timeline) -> dict[str, float]:
    """Across all requests: how often a chain waited on an answer when its slot was due
    (after each account's first 7, whose slots are free from the start), for how long in
    total, and the medians of lag, round trip and server time."""
    reqs = line.all()
    waited = [r.ready - r.due for r in reqs if r.ready > r.due > 0.0]
    return {
        "requests": len(reqs),
        "answer_bound": len(waited),
        "answer_wait": sum(waited),
        "lag_median": statistics.median(r.lag for r in reqs),
        "lag_p90": _quantile([r.lag for r in reqs], 0.9),
        "rtt_median": statistics.median(r.rtt for r in reqs),
        "rtt_p90": _quantile([r.rtt for r in reqs], 0.9),
        "server_median": statistics.median(r.server for r in reqs),
        "up_median": statistics.median((r.arrived or r.sent) - r.sent for r in reqs),
        "down_median": statistics.median(r.answered - (r.finished or r.answered) for r in reqs),
        "up_busy_share": _up_busy_share(line, reqs),
    }


def _up_busy_share(line: Timeline, reqs: list[Req]) -> float:
    """Of all the time requests spent between being sent and their handler starting, the
    share the emulator spent in other requests' handlers (the rest: the client's event loop
    writing them, the kernel, aiohttp parsing)."""
    busy = _busy_between(line)
    ups = [(r.sent, r.arrived) for r in reqs if r.arrived is not None and r.arrived > r.sent]
    total = sum(b - a for a, b in ups)
    return sum(busy(a, b) for a, b in ups) / total if total else 0.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]
