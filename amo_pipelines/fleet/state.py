"""What a fleet job keeps in Redis: each account's progress, the source's spec, the id maps;
and what a task returns (:class:`FleetResult`).

Keys (``<prefix>:fleet:{<job>}:...``, one hash tag per job, every key with the job's TTL):

* ``accounts``: a hash, account label -> JSON record ``{"state", "attempts", "requests",
  "writes", "error", "worker", "updated"}``; ``state`` is ``queued``, ``running``,
  ``done`` or ``failed``. Updated by one Lua script, so two deliveries of one task (a
  redelivery while the first still runs) add their counts instead of losing one.
* ``spec``: the source's funnels (JSON, as :func:`~amo_pipelines.funnels.spec_to_data`
  makes them) for the copy tasks: the source is read once per job.
* ``id-maps``: a hash, account label -> JSON id map (source pipeline and status ids to
  the target's, 142/143 to themselves).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs
from attrs import frozen

State = Literal["queued", "running", "done", "failed"]
FINISHED = ("done", "failed")
DEFAULT_JOB_TTL = 7 * 24 * 3600.0

# KEYS: accounts hash; ARGV: label, state, add requests, add writes, error ('' none),
# worker, now, ttl ms, start ('1' counts an attempt).
_UPDATE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local r = {attempts = 0, requests = 0, writes = 0}
if raw then r = cjson.decode(raw) end
if ARGV[9] == '1' then r.attempts = (r.attempts or 0) + 1 end
r.state = ARGV[2]
r.requests = (r.requests or 0) + tonumber(ARGV[3])
r.writes = (r.writes or 0) + tonumber(ARGV[4])
if ARGV[5] ~= '' then r.error = ARGV[5] elseif ARGV[2] ~= 'failed' then r.error = cjson.null end
if ARGV[6] ~= '' then r.worker = ARGV[6] end
r.updated = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 1
"""


def job_key(prefix: str, job: str, suffix: str) -> str:
    tag = job.replace("{", "(").replace("}", ")")
    return f"{prefix}:fleet:{{{tag}}}:{suffix}"


@frozen
class AccountProgress:
    """One account's record (see the module)."""

    account: str
    state: State
    attempts: int = 0
    requests: int = 0
    writes: int = 0
    error: str | None = None
    worker: str | None = None
    updated: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_data(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "state": self.state,
            "attempts": self.attempts,
            "requests": self.requests,
            "writes": self.writes,
            "error": self.error,
            "worker": self.worker,
        }


class JobState:
    """The Redis records of one job (``redis``: a ``redis.asyncio.Redis``)."""

    def __init__(
        self, redis: Any, job: str, *, prefix: str = "amo_pipelines", ttl: float = DEFAULT_JOB_TTL
    ) -> None:
        self.redis = redis
        self.job = job
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.accounts_key = job_key(prefix, job, "accounts")
        self.spec_key = job_key(prefix, job, "spec")
        self.id_maps_key = job_key(prefix, job, "id-maps")
        self._update = redis.register_script(_UPDATE)

    async def queued(self, labels: Iterable[str]) -> None:
        """Every account ``queued`` (the enqueuer, before it sends the tasks)."""
        for label in labels:
            await self._set(label, "queued", start=False)

    async def running(self, label: str, worker: str) -> None:
        await self._set(label, "running", worker=worker, start=True)

    async def finished(
        self,
        label: str,
        state: State,
        *,
        requests: int,
        writes: int,
        error: str | None = None,
        worker: str = "",
    ) -> None:
        await self._set(label, state, requests=requests, writes=writes, error=error, worker=worker)

    async def _set(
        self,
        label: str,
        state: State,
        *,
        requests: int = 0,
        writes: int = 0,
        error: str | None = None,
        worker: str = "",
        start: bool = False,
    ) -> None:
        args = [label, state, requests, writes, error or "", worker, time.time(), self.ttl_ms]
        await self._update(keys=[self.accounts_key], args=[*args, "1" if start else "0"])

    async def progress(self) -> dict[str, AccountProgress]:
        """Every account's record, by label."""
        raw = await self.redis.hgetall(self.accounts_key)
        out: dict[str, AccountProgress] = {}
        for key, value in raw.items():
            label = key.decode() if isinstance(key, bytes) else str(key)
            out[label] = _record(label, json.loads(value))
        return out

    async def save_spec(self, data: Mapping[str, Any]) -> bool:
        """Store the source's spec unless one is there; True if this one was stored."""
        stored = await self.redis.set(self.spec_key, json.dumps(data), nx=True, px=self.ttl_ms)
        return bool(stored)

    async def load_spec(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self.spec_key)
        return None if raw is None else dict(json.loads(raw))

    async def save_id_map(self, label: str, id_map: Mapping[str, Any]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.id_maps_key, label, json.dumps(id_map))
            pipe.pexpire(self.id_maps_key, self.ttl_ms)
            await pipe.execute()

    async def id_maps(self) -> dict[str, Any]:
        raw = await self.redis.hgetall(self.id_maps_key)
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): json.loads(v) for k, v in raw.items()
        }


def _record(label: str, data: Mapping[str, Any]) -> AccountProgress:
    error = data.get("error")
    worker = data.get("worker")
    updated = data.get("updated")
    return AccountProgress(
        account=label,
        state=data.get("state", "queued"),
        attempts=int(data.get("attempts") or 0),
        requests=int(data.get("requests") or 0),
        writes=int(data.get("writes") or 0),
        error=error if isinstance(error, str) else None,
        worker=worker if isinstance(worker, str) else None,
        updated=float(updated) if isinstance(updated, (int, float)) else None,
    )


def summary(records: Mapping[str, AccountProgress]) -> dict[str, int]:
    """Counts by state (every state present, zeros included)."""
    counts = dict.fromkeys(("queued", "running", "done", "failed"), 0)
    for record in records.values():
        counts[record.state] = counts.get(record.state, 0) + 1
    return counts


@frozen(kw_only=True)
class FleetResult:
    """What a task returns (as :meth:`to_data`): small, no ids of its own, no secrets."""

    job: str
    account: str
    state: str
    """``done`` or ``failed``."""
    requests: int
    """Requests this delivery sent to the account (retries included)."""
    writes: int
    """Of which POST, PATCH or DELETE."""
    worker: str
    id_map_key: str | None = None
    """Redis hash holding the id map under the account's name (``done`` only)."""
    error: str | None = None

    def to_data(self) -> dict[str, Any]:
        return attrs.asdict(self)


def failed_result(
    job: str, label: str, worker: str, error: str, requests: int = 0, writes: int = 0
) -> dict[str, Any]:
    return FleetResult(
        job=job,
        account=label,
        state="failed",
        requests=requests,
        writes=writes,
        worker=worker,
        error=error,
    ).to_data()
