"""The fleet's taskiq tasks and what they do on a worker.

:func:`register` adds two tasks to the caller's broker and returns them as
:class:`FleetTasks`:

* ``amo_pipelines.fleet.apply(job, target, spec, prune=False, lock_timeout=None)``: apply
  a funnels spec (plain data, as :func:`~amo_pipelines.funnels.spec_to_data` makes it) to
  one account;
* ``amo_pipelines.fleet.copy(job, target, source, prune=False, lock_timeout=None)``: copy
  one source account to one target. The source is read once per job: by the enqueuer
  (:meth:`FleetTasks.prepare_copy`) or else by the first task, under a Redis lock, and
  kept in the job's ``spec`` key for the others.

Each task, on the worker:

* marks the account ``running`` in the job's progress hash
  (:class:`~amo_pipelines.fleet.state.JobState`), then ``done`` or ``failed`` with the
  requests and writes it sent and a one-line error;
* opens a client whose rate limiter uses a
  :class:`~amo_pipelines.redis.RedisWindowStore` on the fleet's Redis (one per worker and
  event loop): every worker on every machine shares each account's 7/s budget, its 429
  pause and its block;
* applies under a :class:`~amo_pipelines.redis.RedisApplyLock` of the account (waiting up
  to the message's ``lock_timeout`` keyword, else the worker's
  :attr:`FleetSettings.lock_timeout`): two workers never write one account at once, and
  the lock of a killed worker expires after ``lock_ttl`` seconds so a redelivered task
  goes on;
* is idempotent: :func:`~amo_pipelines.funnels.apply` reads the account and plans against
  it, so a task delivered again after its worker died sends only what is still missing,
  and one delivered after the first finished sends zero writes;
* returns a small JSON result (:class:`FleetResult` as data) and never raises for an
  account's failure (a bad token, a refused write): the task is acknowledged and the
  other accounts go on. Only unexpected errors propagate, after being recorded.

Every request carries ``amo-fleet/<worker>`` at the end of its User-Agent (``worker``:
``AMO_FLEET_WORKER``, else ``<host>:<pid>``), so the server's log shows which worker
sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import attrs
from attrs import define, frozen

from .. import MAX_CUSTOM_STATUSES_PER_PIPELINE, AmoClient, AmoError, RateLimiter
from ..funnels import FunnelsSpec, apply, export, spec_from_data, spec_to_data
from ..funnels.copy import id_map
from ..transport import AiohttpTransport, Request, Response, Transport
from .refs import AccountRef, FleetError, resolve_auth
from .state import DEFAULT_JOB_TTL, FleetResult, JobState, failed_result, job_key

APPLY_TASK = "amo_pipelines.fleet.apply"
COPY_TASK = "amo_pipelines.fleet.copy"
EXPORT_WAIT = 300.0
REDIS_CONNECTIONS = 32
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE", "PUT"})


@frozen(kw_only=True)
class FleetSettings:
    """How the tasks reach Redis and how long they wait.

    ``redis_url``: the fleet's Redis (budget, tokens, locks, progress; often the broker's).
    ``lock_timeout``: seconds a task waits for another apply to its account (a duplicate
    delivery waits for the first, then converges), unless its message gives a
    ``lock_timeout`` of its own (``copy --via taskiq --lock-timeout S``): the message's
    value wins for that delivery. ``lock_ttl``: the apply lock's TTL, how
    long a killed worker keeps its accounts locked. ``lease``: the window store's lease,
    how long a killed worker's pending requests hold their places. ``job_ttl``: how long
    progress, specs, id maps and stored tokens live. ``worker``: this worker's name.
    """

    redis_url: str
    prefix: str = "amo_pipelines"
    lock_timeout: float = 600.0
    lock_ttl: float = 30.0
    lease: float = 15.0
    job_ttl: float = DEFAULT_JOB_TTL
    worker: str | None = None


class _Counted:
    """A transport that counts what one task sends and tags it with the worker's name."""

    def __init__(self, inner: Transport, tag: str) -> None:
        self.inner = inner
        self.tag = tag
        self.requests = 0
        self.writes = 0

    async def send(self, request: Request) -> Response:
        self.requests += 1
        if request.method in WRITE_METHODS:
            self.writes += 1
        agent = request.headers.get("user-agent", "")
        headers = {**request.headers, "user-agent": f"{agent} amo-fleet/{self.tag}".strip()}
        return await self.inner.send(attrs.evolve(request, headers=headers))

    async def aclose(self) -> None:
        pass  # the worker's shared transport outlives the task


@define
class _Resources:
    loop: asyncio.AbstractEventLoop
    redis: Any
    limiter: RateLimiter
    transport: AiohttpTransport


class FleetTasks:
    """The registered tasks (``apply``, ``copy``: taskiq decorated tasks, so
    ``await tasks.copy.kiq(...)`` enqueues) and what runs them."""

    def __init__(self, broker: Any, settings: FleetSettings) -> None:
        self.broker = broker
        self.settings = settings
        self._resources: _Resources | None = None
        # ack after the task (and its result) are done, whatever the worker's --ack-type:
        # a task whose worker dies is delivered again.
        labels = {"ack_type": "when_saved"}

        # lock_timeout is typed Any here: taskiq parses a message's arguments by their
        # annotations (pydantic, lax), which would turn True into 1.0 and "5" into 5.0;
        # the run_* methods validate the value as it was sent. Messages without it (from
        # enqueuers older than the keyword) get None: the worker's setting.
        async def apply_task(
            job: str,
            target: dict[str, Any],
            spec: dict[str, Any],
            prune: bool = False,
            lock_timeout: Any = None,
        ) -> dict[str, Any]:
            return await self.run_apply(job, target, spec, prune=prune, lock_timeout=lock_timeout)

        async def copy_task(
            job: str,
            target: dict[str, Any],
            source: dict[str, Any],
            prune: bool = False,
            lock_timeout: Any = None,
        ) -> dict[str, Any]:
            return await self.run_copy(job, target, source, prune=prune, lock_timeout=lock_timeout)

        self.apply = broker.register_task(apply_task, task_name=APPLY_TASK, **labels)
        self.copy = broker.register_task(copy_task, task_name=COPY_TASK, **labels)

    @property
    def worker(self) -> str:
        return (
            self.settings.worker
            or os.environ.get("AMO_FLEET_WORKER")
            or f"{socket.gethostname()}:{os.getpid()}"  # after a fork: the child's pid
        )

    def job(self, job: str) -> JobState:
        """The job's records in Redis (this event loop's client)."""
        return JobState(
            self._get().redis, job, prefix=self.settings.prefix, ttl=self.settings.job_ttl
        )

    # ------------------------------------------------------------------ task bodies

    async def run_apply(
        self,
        job: str,
        target: Mapping[str, Any],
        spec: Mapping[str, Any],
        *,
        prune: bool = False,
        lock_timeout: float | None = None,
    ) -> dict[str, Any]:
        """The ``apply`` task's body (callable directly, e.g. in tests). ``lock_timeout``:
        seconds to wait for the account's apply lock, instead of the settings' (None); a
        negative, infinite or non-number value fails the account, nothing sent."""

        async def load(_: _Resources) -> FunnelsSpec:
            return spec_from_data(spec, path=f"job {job}")

        return await self._run(job, target, load, prune, lock_timeout)

    async def run_copy(
        self,
        job: str,
        target: Mapping[str, Any],
        source: Mapping[str, Any],
        *,
        prune: bool = False,
        lock_timeout: float | None = None,
    ) -> dict[str, Any]:
        """The ``copy`` task's body (``lock_timeout``: as for :meth:`run_apply`)."""

        async def load(res: _Resources) -> FunnelsSpec:
            return await self._source_spec(job, AccountRef.from_data(source), res)

        return await self._run(job, target, load, prune, lock_timeout)

    async def prepare_copy(self, job: str, source: AccountRef) -> FunnelsSpec:
        """Read the source once for a job (the enqueuer, before it enqueues: a source that
        can not be read fails here, not in every task)."""
        return await self._source_spec(job, source, self._get())

    async def _source_spec(self, job: str, source: AccountRef, res: _Resources) -> FunnelsSpec:
        state = JobState(res.redis, job, prefix=self.settings.prefix, ttl=self.settings.job_ttl)
        data = await state.load_spec()
        if data is None:
            lock = res.redis.lock(
                job_key(self.settings.prefix, job, "export-lock"),
                timeout=max(self.settings.lock_ttl, 120.0),
                # an export takes a minute at most: wait for it even with a short lock wait
                blocking_timeout=EXPORT_WAIT,
                thread_local=False,
            )
            if not await lock.acquire():
                raise FleetError(f"waited {EXPORT_WAIT:g}s for the export of job {job}")
            try:
                data = await state.load_spec()  # another task may have read it meanwhile
                if data is None:
                    async with self._client(source, res) as (amo, _):
                        exported = await export(amo)
                    data = spec_to_data(exported)
                    await state.save_spec(data)
            finally:
                with contextlib.suppress(Exception):
                    await lock.release()
        return spec_from_data(data, path=f"job {job} source")

    async def _run(
        self,
        job: str,
        target: Mapping[str, Any],
        load: Callable[[_Resources], Awaitable[FunnelsSpec]],
        prune: bool,
        lock_timeout: object,
    ) -> dict[str, Any]:
        from ..redis import RedisApplyLock

        res = self._get()
        settings = self.settings
        worker = self.worker
        state = JobState(res.redis, job, prefix=settings.prefix, ttl=settings.job_ttl)
        try:
            ref = AccountRef.from_data(target)
        except AmoError as e:
            label = str(target.get("name") or target.get("base_url") or "?")
            await state.finished(label, "failed", requests=0, writes=0, error=str(e), worker=worker)
            return failed_result(job, label, worker, str(e))
        label = ref.label
        await state.running(label, worker)
        counted: _Counted | None = None
        try:
            wait = lock_wait(lock_timeout, settings.lock_timeout)
            spec = await load(res)
            async with self._client(ref, res) as (amo, counted):
                lock = RedisApplyLock(
                    res.redis,
                    prefix=settings.prefix,
                    timeout=wait,
                    ttl=settings.lock_ttl,
                )
                result = await apply(amo, spec, prune=prune, lock=lock)
            await state.save_id_map(label, id_map(spec, result.pipeline_ids, result.status_ids))
        except (AmoError, FleetError) as e:
            sent = (counted.requests, counted.writes) if counted else (0, 0)
            message = f"{type(e).__name__}: {e}"
            await state.finished(
                label, "failed", requests=sent[0], writes=sent[1], error=message, worker=worker
            )
            return failed_result(job, label, worker, message, *sent)
        except Exception as e:
            # A bug or an outage of Redis itself: recorded, then raised for taskiq to log.
            sent = (counted.requests, counted.writes) if counted else (0, 0)
            with contextlib.suppress(Exception):
                await state.finished(
                    label,
                    "failed",
                    requests=sent[0],
                    writes=sent[1],
                    error=f"unexpected {type(e).__name__}",
                    worker=worker,
                )
            raise
        assert counted is not None
        await state.finished(
            label, "done", requests=counted.requests, writes=counted.writes, worker=worker
        )
        return FleetResult(
            job=job,
            account=label,
            state="done",
            requests=counted.requests,
            writes=counted.writes,
            worker=worker,
            id_map_key=state.id_maps_key,
        ).to_data()

    # ------------------------------------------------------------------ resources

    @contextlib.asynccontextmanager
    async def _client(
        self, ref: AccountRef, res: _Resources
    ) -> AsyncIterator[tuple[AmoClient, _Counted]]:
        token, auth = await resolve_auth(ref, res.redis)
        counted = _Counted(res.transport, self.worker)
        options: dict[str, Any] = {
            "base_url": ref.base_url,
            "rate_limiter": res.limiter,
            "transport": counted,
            # a pipeline's statuses in one POST, as the CLI's copy does
            "batch_size": MAX_CUSTOM_STATUSES_PER_PIPELINE,
        }
        if auth is not None:
            options["auth"] = auth
        else:
            options["access_token"] = token
        async with AmoClient(**options) as amo:
            yield amo, counted

    def _get(self) -> _Resources:
        """This event loop's Redis client, limiter and HTTP transport (made on first use)."""
        loop = asyncio.get_running_loop()
        if self._resources is None or self._resources.loop is not loop:
            import redis.asyncio as aioredis

            from ..redis import RedisWindowStore

            # A worker runs many accounts at once, each with requests waiting on the shared
            # budget: redis-py's default pool (100 connections) then raises
            # MaxConnectionsError, which fails requests unsent. A blocking pool waits for a
            # connection instead.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=60
            )
            redis = aioredis.Redis.from_pool(pool)
            store = RedisWindowStore(redis, prefix=self.settings.prefix, lease=self.settings.lease)
            self._resources = _Resources(
                loop=loop,
                redis=redis,
                limiter=RateLimiter(store=store),
                transport=AiohttpTransport(),
            )
        return self._resources

    async def aclose(self) -> None:
        """Close this event loop's Redis client and HTTP transport (the worker's shutdown
        event calls it)."""
        res, self._resources = self._resources, None
        if res is not None and res.loop is asyncio.get_running_loop():
            await res.transport.aclose()
            await res.redis.aclose()


def lock_wait(value: object, default: float) -> float:
    """A message's ``lock_timeout`` (None: ``default``), or :class:`FleetError`: a bad value
    must fail its account, not make taskiq deliver it again and again."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # the type only: a string in a message could be anything
        raise FleetError(f"lock_timeout must be a number of seconds, got {type(value).__name__}")
    if not (0 <= value < float("inf")):  # nan fails every comparison
        raise FleetError(f"lock_timeout must be finite and >= 0, got {value!r}")
    return float(value)


def register(broker: Any, settings: FleetSettings | None = None, **options: Any) -> FleetTasks:
    """Register the fleet's tasks on ``broker`` (any taskiq broker; a
    ``taskiq_redis.RedisStreamBroker`` for acknowledgement after completion) and close
    their resources when a worker shuts down. ``settings``, or its fields as keywords
    (``redis_url=`` at least)."""
    from taskiq import TaskiqEvents

    if settings is None:
        settings = FleetSettings(**options)
    elif options:
        settings = attrs.evolve(settings, **options)
    tasks = FleetTasks(broker, settings)

    async def close(_: Any) -> None:
        await tasks.aclose()

    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, close)
    return tasks
