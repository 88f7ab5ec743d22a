"""What a batch call leaves in the context of tasks created while it sends: only whether it
stopped, never its results. A long-lived task started meanwhile (the rate limiter's pump, a
caller's background job) must not keep the created models alive, and it must not see a
later stop of that batch either way it reads it."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

from amo_pipelines import AmoClient, MockTransport, NewStatus, Request, Response
from amo_pipelines.testing import json_response

PIPELINE_ID = 77


def created(body: list[dict[str, Any]]) -> Response:
    statuses = [
        {
            "id": 5000 + i,
            "name": item["name"],
            "sort": item.get("sort", 10),
            "is_editable": True,
            "pipeline_id": PIPELINE_ID,
            "color": item.get("color", "#fffeb2"),
            "type": 0,
            "account_id": 1,
            "request_id": item["request_id"],
            "_links": {"self": {"href": f"https://x.amocrm.ru/api/v4/leads/pipelines/77/{i}"}},
        }
        for i, item in enumerate(body)
    ]
    return json_response({"_total_items": len(statuses), "_embedded": {"statuses": statuses}})


class SpawningTransport(MockTransport):
    """Starts a task that outlives the request, as a rate limiter's pump or a caller's
    background job started during a send does; the task copies the sender's context."""

    def __init__(self) -> None:
        super().__init__(self.answer)
        self.spawned: list[asyncio.Task[None]] = []

    def answer(self, request: Request) -> Response:
        return created(json.loads(request.body or b"[]"))

    async def send(self, request: Request) -> Response:
        self.spawned.append(asyncio.ensure_future(asyncio.sleep(3600)))
        return await super().send(request)


async def test_a_task_started_during_a_create_does_not_keep_the_created_models_alive() -> None:
    transport = SpawningTransport()
    async with AmoClient(subdomain="x", access_token="t" * 40, transport=transport) as amo:
        made = await amo.statuses.create(
            PIPELINE_ID, [NewStatus(name=f"Stage {i}", sort=10 * i) for i in range(1, 4)]
        )
        assert [s.name for s in made] == ["Stage 1", "Stage 2", "Stage 3"]
        refs = [weakref.ref(s) for s in made]
        del made
        gc.collect()
        assert all(task.done() is False for task in transport.spawned)  # still running
        assert [r() for r in refs] == [None, None, None]
        for task in transport.spawned:
            task.cancel()
        await asyncio.gather(*transport.spawned, return_exceptions=True)
