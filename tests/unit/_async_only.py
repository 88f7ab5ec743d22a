"""A window store with the WindowStore coroutines only, as a store on the network has: the
limiter must await its first try, so a test can hold the synchronous fast path to it."""

from __future__ import annotations

from collections.abc import Sequence

from amo_pipelines import InMemoryWindowStore
from amo_pipelines.budget.windows import Admission, Granted, Window


class AsyncOnly:
    def __init__(self) -> None:
        self.inner = InMemoryWindowStore()

    async def acquire(self, windows: Sequence[Window], now: float) -> Admission:
        return self.inner.acquire_now(windows, now)

    async def complete(self, grant: Granted, at: float) -> None:
        self.inner.complete_now(grant, at)

    async def refund(self, grant: Granted) -> None:
        self.inner.refund_now(grant)
