"""Shared helpers of the funnels tests: emulated accounts and unthrottled clients.

The emulators run without rate limits and the clients without a limiter: these tests count
requests, they do not time them (the rate limiter has its own tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from amo_pipelines import (
    NO_RETRY,
    AmoClient,
    DescriptionInput,
    NewPipeline,
    NewStatus,
    RateLimiter,
    StatusColor,
)
from amo_pipelines.emulator import Emulator
from amo_pipelines.funnels import FunnelsSpec
from amo_pipelines.funnels._order import nearest_palette_color
from support.emulated import unlimited_config


def funnels_client(emu: Emulator, **kwargs: Any) -> AmoClient:
    """A client sending each request once, in chunks of 97, with no rate limit of its own."""
    limiter = RateLimiter(integration_limit=None, account_limit=None, max_in_flight=None)
    kwargs.setdefault("retry", NO_RETRY)
    return AmoClient(
        base_url=emu.url,
        access_token=emu.admin_token,
        rate_limiter=limiter,
        batch_size=97,
        **kwargs,
    )


@contextlib.asynccontextmanager
async def account(**kwargs: Any) -> AsyncIterator[tuple[Emulator, AmoClient]]:
    async with Emulator(unlimited_config(**kwargs)) as emu, funnels_client(emu) as amo:
        yield emu, amo


def funnel(name: str) -> dict[str, Any]:
    """A funnels file's data: one pipeline ``name`` with five statuses."""
    return {"pipelines": [{"name": name, "statuses": [{"name": f"{name} {i}"} for i in range(5)]}]}


async def fill_source(amo: AmoClient) -> None:
    """Beside the seeded main pipeline: a pipeline with described statuses and renamed
    won/lost, and one whose statuses carry no descriptions."""
    [sales, plain] = await amo.pipelines.create(
        [
            NewPipeline(name="Продажи", sort=20, won_status_name="Оплачено"),
            NewPipeline(
                name="Plain",
                sort=30,
                is_unsorted_on=False,
                statuses=[
                    NewStatus(name="One", sort=10, color=StatusColor.GREEN),
                    NewStatus(name="Two", sort=20),
                ],
                lost_status_name="Lost it",
            ),
        ]
    )
    await amo.statuses.create(
        sales.id,
        [
            NewStatus(
                name=f"Этап {i}",
                sort=10 * i,
                color=list(StatusColor)[i],
                descriptions=[DescriptionInput.create("newbie", f"Шаг {i} ✅")]
                + ([DescriptionInput.create("master", "Готово")] if i % 2 else []),
            )
            for i in range(1, 6)
        ],
    )
    assert plain.id


def shape(spec: FunnelsSpec) -> list[Any]:
    """A spec without ids and source, colors as a write would make them: what must survive
    a copy."""
    out = []
    for p in spec.pipelines:
        statuses = []
        for s in p.statuses:
            color = s.color if s.role else (s.color and nearest_palette_color(s.color))
            if s.role == "incoming":
                color = None
            statuses.append((s.role, s.name, color if not s.role else None, s.descriptions))
        out.append((p.name, p.is_main, p.is_unsorted_on, statuses))
    return out
