"""``copy --via taskiq``: enqueue one copy task per target on taskiq workers and watch them.

The source is read here, once, into the job's spec key (a source that can not be read
fails before anything is enqueued); each target's token goes into Redis (a long-lived
token with the job's TTL, an OAuth pair from ``--token-file`` unless the workers already
keep a newer one) so that the task messages carry account references only. Then one
``amo_pipelines.fleet.copy`` task per target (with ``lock_timeout`` when
``--lock-timeout`` is given; else the workers' ``AMO_FLEET_LOCK_TIMEOUT`` applies), and
the job's progress hash is polled until every account is ``done`` or ``failed``: a
progress bar per account on a terminal with rich, plain lines otherwise (each change of
state, and a summary every few seconds), ``--json`` for machine output. The workers:
``AMO_FLEET_BROKER=redis://... taskiq worker amo_pipelines.fleet.worker:make_broker``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from yarl import URL

from .. import TokenSet
from .accounts import Account, UsageError, token_env_names
from .commands import lock_timeout_of

if TYPE_CHECKING:  # the taskiq extra is imported only for --via taskiq
    from ..fleet import AccountProgress, JobState

SUMMARY_EVERY = 5.0
POLL = 0.5


def new_job_id() -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"copy-{stamp}-{uuid.uuid4().hex[:6]}"


def _label(account: Account) -> str:
    from ..fleet import AccountRef

    return AccountRef(account.spec, name=account.name).label


def _token_file(path: str) -> TokenSet:
    try:
        return TokenSet.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a readable token file") from None


def _write(path: str, data: Any) -> None:
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


async def _stage(tasks: Any, redis: Any, account: Account, env: Mapping[str, str]) -> Any:
    """The account's reference for task messages, its token put in Redis (see module)."""
    from ..fleet import AccountRef, put_access_token, put_token_set, token_key

    ref = AccountRef(account.spec, name=account.name)
    key = token_key(tasks.settings.prefix, ref)
    if account.token_file:
        await put_token_set(redis, key, _token_file(account.token_file))
        return AccountRef(account.spec, name=account.name, token_key=key)
    names = [account.token_env] if account.token_env else token_env_names(account.spec)
    token = next((env[n] for n in names if n and env.get(n)), None)
    if token is None:  # the workers' environment may have it
        return AccountRef(account.spec, name=account.name, token_env=account.token_env)
    await put_access_token(redis, key, token, ttl=tasks.settings.job_ttl)
    return AccountRef(account.spec, name=account.name, token_key=key)


async def copy_via_taskiq(
    args: argparse.Namespace,
    source: Account,
    targets: Sequence[Account],
    env: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run the job; the exit status and the JSON summary."""
    env = os.environ if env is None else env
    lock_timeout_of(args)  # before any connection
    if source.is_emulator or any(t.is_emulator for t in targets):
        raise UsageError(
            "--via taskiq: the workers must reach every account: give base URLs "
            "(an embedded emulator lives in this process only)"
        )
    labels = [_label(t) for t in targets]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise UsageError(f"targets named twice (give each a name): {', '.join(repeated)}")
    try:
        from ..fleet.worker import fleet_broker
    except ImportError:
        raise UsageError(
            "--via taskiq needs taskiq and taskiq-redis: pip install 'amo-pipelines[taskiq]'"
        ) from None
    from redis.exceptions import RedisError

    from ..fleet import FleetError

    try:
        broker, tasks = fleet_broker(args.broker, env)
    except FleetError as e:
        raise UsageError(str(e)) from None
    try:
        return await _run(args, broker, tasks, source, targets, labels, env)
    except RedisError as e:
        # the URL may hold a password: name the server by host and port only
        url = URL(args.broker or env.get("AMO_FLEET_BROKER") or "")
        raise UsageError(f"Redis at {url.host}:{url.port}: {type(e).__name__}") from None


async def _run(
    args: argparse.Namespace,
    broker: Any,
    tasks: Any,
    source: Account,
    targets: Sequence[Account],
    labels: list[str],
    env: Mapping[str, str],
) -> tuple[int, dict[str, Any]]:
    job = args.job or new_job_id()
    state = tasks.job(job)
    await broker.startup()
    try:
        src = await _stage(tasks, state.redis, source, env)
        refs = [await _stage(tasks, state.redis, t, env) for t in targets]
        out = Display(sys.stderr, labels, quiet=args.json)
        out.say(f"job {job}: reading the source {src.label}")
        spec = await tasks.prepare_copy(job, src)
        await state.queued(labels)
        # Not given: no keyword at all, so the workers' AMO_FLEET_LOCK_TIMEOUT decides (and
        # workers older than the keyword still take the message).
        wait = lock_timeout_of(args)
        extra = {} if wait is None else {"lock_timeout": wait}
        for ref in refs:
            await tasks.copy.kiq(job, ref.to_data(), src.to_data(), prune=args.prune, **extra)
        out.say(f"job {job}: {len(refs)} copy tasks enqueued")
        with out:
            finished = await watch(state, labels, out, timeout=args.timeout)
        records = await state.progress()
        id_maps = await state.id_maps()
    finally:
        await tasks.aclose()
        await broker.shutdown()
    source_host = spec.source.host if spec.source is not None else None
    id_map = {"source": source_host, "targets": {k: id_maps[k] for k in labels if k in id_maps}}
    _write(args.id_map, id_map)
    rows = [records[k].to_data() for k in labels if k in records]
    failed = [r for r in rows if r["state"] == "failed"]
    if not finished:
        out.say(f"job {job}: gave up waiting after {args.timeout:g}s; the workers go on")
    out.say(f"id map written to {args.id_map}")
    summary = {
        "job": job,
        "finished": finished,
        "targets": rows,
        "id_map": id_map,
        "id_map_file": args.id_map,
    }
    return (1 if failed or not finished else 0), summary


class Display:
    """Fleet progress on stderr: rich bars on a terminal, plain lines otherwise."""

    def __init__(self, err: TextIO, labels: Sequence[str], *, quiet: bool) -> None:
        self.err = err
        self.quiet = quiet
        self.labels = list(labels)
        self._bars: Any = None
        self._ids: dict[str, Any] = {}
        if not quiet and err.isatty():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
            except ImportError:
                return
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(file=err),
            )

    def __enter__(self) -> Display:
        if self._bars is not None:
            self._bars.start()
            self._total = self._bars.add_task("fleet", total=len(self.labels))
            for label in self.labels:
                self._ids[label] = self._bars.add_task(f"{label}: queued", total=1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def say(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        elif not self.quiet:
            print(text, file=self.err, flush=True)

    def changed(self, label: str, text: str, finished: bool) -> None:
        if self._bars is not None:
            self._bars.update(self._ids[label], description=f"{label}: {text}")
            if finished:
                self._bars.update(self._ids[label], completed=1)
        else:
            self.say(f"[{label}] {text}")

    def counts(self, counts: Mapping[str, int], final: bool = False) -> None:
        text = ", ".join(f"{n} {state}" for state, n in counts.items())
        if self._bars is not None:
            done = counts["done"] + counts["failed"]
            self._bars.update(self._total, description=f"fleet: {text}", completed=done)
        elif final or not self.quiet:
            self.say(f"fleet: {text}")


def describe(record: AccountProgress) -> str:
    if record.state == "running":
        again = f" (delivery {record.attempts})" if record.attempts > 1 else ""
        return f"running on {record.worker}{again}"
    if record.state == "done":
        return f"done: {record.requests} requests, {record.writes} writes"
    if record.state == "failed":
        return f"failed: {record.error}"
    return record.state


async def watch(
    state: JobState, labels: Sequence[str], out: Display, *, timeout: float | None
) -> bool:
    """Poll the job's progress until every account finished (True) or ``timeout`` (False)."""
    from ..fleet import summary

    seen: dict[str, tuple[str, int]] = {}
    started = shown = time.monotonic()
    while True:
        records = await state.progress()
        mine = {k: records[k] for k in labels if k in records}
        for label, record in mine.items():
            key = (record.state, record.attempts)
            if seen.get(label) != key:
                seen[label] = key
                out.changed(label, describe(record), record.finished)
        counts = summary(mine)
        counts["queued"] += len(labels) - len(mine)
        if all(r.finished for r in mine.values()) and len(mine) == len(labels):
            out.counts(counts, final=True)
            return True
        now = time.monotonic()
        if out._bars is not None or now - shown >= SUMMARY_EVERY:
            shown = now
            out.counts(counts)
        if timeout is not None and now - started >= timeout:
            out.counts(counts, final=True)
            return False
        await asyncio.sleep(POLL)
