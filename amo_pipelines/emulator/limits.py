"""Sliding-window rate limits and the account block that repeated 429s bring."""

from __future__ import annotations

import math
from collections import deque

from attrs import define, field

ACCOUNT_KEY = "account"


@define
class SlidingWindow:
    """Arrival times within the last ``window`` seconds.

    An arrival at time ``a`` is inside the window at time ``t`` while ``a > t - window``.
    """

    limit: int
    window: float
    arrivals: deque[float] = field(factory=deque)

    def prune(self, now: float) -> None:
        horizon = now - self.window
        while self.arrivals and self.arrivals[0] <= horizon:
            self.arrivals.popleft()

    def wait(self, now: float) -> float:
        """Seconds until one more arrival fits (0 while it does)."""
        count = len(self.arrivals)
        if count < self.limit:
            return 0.0
        # One more fits once count - limit + 1 entries have expired, i.e. when entry number
        # `count - limit` (0-based) leaves the window.
        return max(self.arrivals[count - self.limit] + self.window - now, 0.0)


def round_up_ms(seconds: float) -> float:
    """Round up to whole milliseconds, never below 1 ms."""
    return max(math.ceil(seconds * 1000 - 1e-6) / 1000, 0.001)


@define
class RateLimiter:
    """Per-token and per-account limits plus the block.

    Every request that reaches the limiter (i.e. the account is not blocked) is recorded in its
    token's window and in the account window, including requests that are then rejected (a
    client that keeps hammering stays limited), unless ``count_rejected`` is False.
    """

    token_rps: int | None
    account_rps: int | None
    window: float
    block_after: int | None
    block_window: float
    count_rejected: bool = True
    tokens: dict[str, SlidingWindow] = field(factory=dict)
    account: SlidingWindow | None = None
    rejections: deque[float] = field(factory=deque)
    """Times of the 429s sent within ``block_window``."""
    blocked: bool = False

    def check(self, token_key: str, now: float) -> float | None:
        """Record a request; return None when it is within both limits, else ``retry_after``
        (seconds until the exceeded windows all have a free slot)."""
        windows: list[SlidingWindow] = []
        if self.token_rps is not None:
            win = self.tokens.get(token_key)
            if win is None:
                win = self.tokens[token_key] = SlidingWindow(self.token_rps, self.window)
            windows.append(win)
        if self.account_rps is not None:
            if self.account is None:
                self.account = SlidingWindow(self.account_rps, self.window)
            windows.append(self.account)
        for win in windows:
            win.prune(now)
        if self.count_rejected:
            for win in windows:
                win.arrivals.append(now)
            full = [win for win in windows if len(win.arrivals) > win.limit]
        else:
            full = [win for win in windows if len(win.arrivals) >= win.limit]
            if not full:
                for win in windows:
                    win.arrivals.append(now)
        return max(win.wait(now) for win in full) if full else None

    def record_rejection(self, now: float) -> bool:
        """Count a 429 just sent; return True if it makes the account blocked."""
        if self.block_after is None:
            return False
        horizon = now - self.block_window
        while self.rejections and self.rejections[0] <= horizon:
            self.rejections.popleft()
        self.rejections.append(now)
        if not self.blocked and len(self.rejections) > self.block_after:
            self.blocked = True
            return True
        return False

    def reset(self) -> None:
        """Forget every window, the 429 history and the block."""
        self.tokens.clear()
        self.account = None
        self.rejections.clear()
        self.blocked = False
