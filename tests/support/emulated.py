"""Helpers for tests that run the SDK (or raw HTTP) against an in-process emulator."""

from __future__ import annotations

from typing import Any

from amo_pipelines import AmoClient, RateLimiter, RetryPolicy
from amo_pipelines.emulator import Emulator, EmulatorConfig
from support.constants import PIPELINES


def unlimited_config(**kwargs: Any) -> EmulatorConfig:
    """An emulator configuration without rate limits (unless ``kwargs`` set them): tests
    that count requests must not be timed by the emulator's windows."""
    kwargs.setdefault("token_rps", None)
    kwargs.setdefault("account_rps", None)
    return EmulatorConfig(**kwargs)


def fast_client(emu: Emulator, token: str | None = None, **kwargs: Any) -> AmoClient:
    """A client with no rate limit of its own (the emulator's are off too), quick retries,
    and a short reconcile wait (the emulator never commits late unless a test says so)."""
    kwargs.setdefault("reconcile_wait", 0.05)
    kwargs.setdefault("rate_limiter", RateLimiter(integration_limit=None, account_limit=None))
    kwargs.setdefault("retry", RetryPolicy(backoff=0.01, max_backoff=0.05))
    return AmoClient(base_url=emu.url, access_token=token or emu.admin_token, **kwargs)


def posts(emu: Emulator, path: str = PIPELINES) -> int:
    """How many POSTs to ``path`` reached the emulator."""
    return sum(1 for e in emu.request_log if e.method == "POST" and e.path == path)


def writes(emu: Emulator) -> list[tuple[str, str]]:
    """(method, path) of every request that reached the emulator, reads left out."""
    return [(e.method, e.path) for e in emu.request_log if e.method != "GET"]


class ManualClock:
    """The emulator's monotonic clock, moved by hand.

    Not :class:`amo_pipelines.FakeClock`: the emulator imports nothing from the SDK and
    takes a plain ``() -> float``, and its tests move time between two raw requests with a
    synchronous ``advance`` (FakeClock's is a coroutine that also wakes sleepers).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
