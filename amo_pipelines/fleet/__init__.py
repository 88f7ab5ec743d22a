"""Fleets: funnel applies and copies to many accounts on taskiq workers.

A migration that rolls a template out to hundreds of accounts outgrows one process: a
deploy restarts workers mid-run, a machine dies, and the job must go on elsewhere without
a duplicate status or a blocked account. This module builds on an existing asyncio-native
task engine rather than a queue of its own: `taskiq <https://taskiq-python.github.io/>`_
with the taskiq-redis stream broker (a message is acknowledged after its task finished, and
one left unacknowledged by a dead worker is delivered again). arq is in maintenance mode
and pins an old redis-py; Celery has no async tasks.

Needs the ``taskiq`` extra (``pip install 'amo-pipelines[taskiq]'``: taskiq, taskiq-redis,
redis-py). The core package never imports this module.

::

    from taskiq_redis import RedisStreamBroker
    from amo_pipelines.fleet import register

    broker = RedisStreamBroker("redis://redis.internal:6379/0")
    fleet = register(broker, redis_url="redis://redis.internal:6379/0")
    # enqueuer:
    await broker.startup()
    await fleet.copy.kiq("job-1", {"base_url": "https://a.amocrm.ru"},
                         {"base_url": "https://template.amocrm.ru"})
    # lock_timeout=30: wait 30 s for the account's apply lock (default: the settings')
    await fleet.copy.kiq("job-1", {"base_url": "https://b.amocrm.ru"},
                         {"base_url": "https://template.amocrm.ru"}, lock_timeout=30)
    # workers: taskiq worker myapp.tasks:broker

Or, with the broker from the environment: ``AMO_FLEET_BROKER=redis://...
taskiq worker amo_pipelines.fleet.worker:make_broker``, and ``amo-pipelines copy ...
--via taskiq --broker redis://...`` to enqueue a job and watch it.

Every account of every worker shares one budget (a
:class:`~amo_pipelines.redis.RedisWindowStore`), one apply at a time per account (a
:class:`~amo_pipelines.redis.RedisApplyLock` with a TTL), and each task is idempotent: see
:mod:`amo_pipelines.fleet.tasks`. Progress, the source's spec and the id maps live in Redis
per job (:class:`~amo_pipelines.fleet.state.JobState`). Task messages carry no secrets
(:mod:`amo_pipelines.fleet.refs`).
"""

from __future__ import annotations

from .refs import AccountRef, FleetError, put_access_token, put_token_set, token_key
from .state import AccountProgress, FleetResult, JobState, summary
from .tasks import APPLY_TASK, COPY_TASK, FleetSettings, FleetTasks, register

__all__ = [
    "APPLY_TASK",
    "COPY_TASK",
    "AccountProgress",
    "AccountRef",
    "FleetError",
    "FleetResult",
    "FleetSettings",
    "FleetTasks",
    "JobState",
    "put_access_token",
    "put_token_set",
    "register",
    "summary",
    "token_key",
]
