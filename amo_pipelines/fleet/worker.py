"""A ready-made broker for ``taskiq worker``, configured from the environment.

::

    AMO_FLEET_BROKER=redis://redis.internal:6379/0 \\
        taskiq worker amo_pipelines.fleet.worker:make_broker --workers 1

``taskiq worker`` imports ``module:name`` and, when ``name`` is a function, calls it for
the broker; nothing is created at import. The broker is a
``taskiq_redis.RedisStreamBroker`` (a Redis stream read by a consumer group): a message
is acknowledged only after its task finished, and a message left unacknowledged by a
worker that died is claimed by another worker (``XAUTOCLAIM``) once it has been idle for
``AMO_FLEET_IDLE_TIMEOUT`` seconds.

Environment:

* ``AMO_FLEET_BROKER`` (required): the broker's Redis URL;
* ``AMO_FLEET_REDIS``: the Redis of budgets, tokens, locks and progress (default: the
  broker's);
* ``AMO_FLEET_QUEUE``: the stream (default ``amo_pipelines:fleet``);
* ``AMO_FLEET_IDLE_TIMEOUT`` (default 60): seconds before a dead worker's task is
  delivered again. A task running longer than this is delivered to a second worker as
  well; that copy waits for the account's apply lock and then finds nothing to write;
* ``AMO_FLEET_LOCK_TTL`` (30), ``AMO_FLEET_LOCK_TIMEOUT`` (600), ``AMO_FLEET_LEASE`` (15):
  see :class:`~amo_pipelines.fleet.FleetSettings`. ``AMO_FLEET_LOCK_TIMEOUT`` is how long
  a task waits for its account's apply lock when its message does not say: a message's
  ``lock_timeout`` keyword (``amo-pipelines copy --via taskiq --lock-timeout S``) wins
  for that task;
* ``AMO_FLEET_WORKER``: the worker's name in progress records and User-Agents;
* tokens: ``AMO_TOKEN_<SUBDOMAIN>`` / ``AMO_TOKEN``, and ``AMO_CLIENT_ID``,
  ``AMO_CLIENT_SECRET``, ``AMO_REDIRECT_URI`` for OAuth refreshes (see
  :mod:`amo_pipelines.fleet.refs`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .refs import FleetError
from .tasks import FleetSettings, FleetTasks, register

QUEUE = "amo_pipelines:fleet"
GROUP = "amo_pipelines"


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise FleetError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise FleetError(f"{name} must be positive, got {raw!r}")
    return value


def fleet_broker(
    url: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[Any, FleetTasks]:
    """The stream broker with the fleet's tasks registered, for workers and enqueuers
    alike (both must agree on the stream and the consumer group)."""
    from taskiq_redis import RedisStreamBroker

    env = os.environ if env is None else env
    url = url or env.get("AMO_FLEET_BROKER")
    if not url:
        raise FleetError("set AMO_FLEET_BROKER to the broker's Redis URL (redis://host:6379/0)")
    idle = _number(env, "AMO_FLEET_IDLE_TIMEOUT", 60.0)
    broker = RedisStreamBroker(
        url,
        queue_name=env.get("AMO_FLEET_QUEUE") or QUEUE,
        consumer_group_name=GROUP,
        # Claim a dead worker's messages after this idle time; the claim's own lock frees
        # itself too if a worker dies while holding it.
        idle_timeout=int(idle * 1000),
        unacknowledged_lock_timeout=max(idle, 5.0),
        # One message per read: tasks last seconds, and a worker that reads a hundred at
        # once would leave the others idle.
        xread_count=1,
        xread_block=1000,
    )
    settings = FleetSettings(
        redis_url=env.get("AMO_FLEET_REDIS") or url,
        lock_ttl=_number(env, "AMO_FLEET_LOCK_TTL", 30.0),
        lock_timeout=_number(env, "AMO_FLEET_LOCK_TIMEOUT", 600.0),
        lease=_number(env, "AMO_FLEET_LEASE", 15.0),
        worker=env.get("AMO_FLEET_WORKER") or None,
    )
    return broker, register(broker, settings)


def make_broker() -> Any:
    """``taskiq worker amo_pipelines.fleet.worker:make_broker``: the broker from
    ``AMO_FLEET_BROKER``, with the fleet's tasks."""
    return fleet_broker()[0]
