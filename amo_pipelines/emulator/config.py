"""The emulator's settings."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from attrs import field, frozen

from .faults import RANDOM_FAULT_KINDS, FaultKind

Clock = Callable[[], float]


def _positive_or_none(_inst: object, attribute: Any, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


def _positive(_inst: object, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative_or_none(_inst: object, attribute: Any, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0 or None, got {value!r}")


def _probability(_inst: object, attribute: Any, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be within [0, 1], got {value!r}")


def _sort_range(_inst: object, attribute: Any, value: tuple[int, int] | None) -> None:
    if value is not None and value[0] > value[1]:
        raise ValueError(f"{attribute.name} must be (low, high) with low <= high, got {value!r}")


def _convert_rates(value: Mapping[str | FaultKind, float]) -> Mapping[FaultKind, float]:
    rates: dict[FaultKind, float] = {}
    for key, prob in value.items():
        kind = FaultKind.parse(key)
        if kind not in RANDOM_FAULT_KINDS:
            raise ValueError(f"fault kind {kind.value!r} can not be drawn at random")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"fault rate for {kind.value!r} must be within [0, 1], got {prob!r}")
        rates[kind] = float(prob)
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError("fault rates add up to more than 1")
    return MappingProxyType(rates)


def _convert_latency(value: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        low = high = float(value)
    else:
        low, high = (float(v) for v in value)
    if low < 0 or high < low:
        raise ValueError(f"latency must be 0 <= low <= high, got {value!r}")
    return (low, high)


@frozen(kw_only=True)
class EmulatorConfig:
    """How an :class:`~amo_pipelines.emulator.Emulator` behaves.

    Every field has a default, so ``EmulatorConfig()`` is a seeded account on an ephemeral
    loopback port with amoCRM's documented rate limits (7 rps per token, 50 per account).

    Fields marked *emulator's choice* set rules the API pages never state; their defaults are
    the strict readings the emulator has always enforced, and each can be turned off.
    """

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port; read the actual one from ``Emulator.url``."""
    account_id: int = 12345678
    subdomain: str = "example"
    """The account's subdomain. Informational only: links use the request's own origin."""

    token_rps: int | None = field(default=7, validator=_positive_or_none)
    """Requests per ``window`` allowed per bearer token; None turns the limit off."""
    account_rps: int | None = field(default=50, validator=_positive_or_none)
    """Requests per ``window`` allowed for the whole account; None turns the limit off."""
    window: float = field(default=1.0, validator=_positive)
    count_rejected: bool = True
    """*Emulator's choice*: requests refused with 429 still take a slot in the rate windows, so
    a client that keeps hammering stays limited. False: only admitted requests count."""
    block_after: int | None = field(default=10, validator=_non_negative_or_none)
    """*Emulator's choice* (amoCRM says only that repeated violations block the account, not
    how many): more than this many 429s within ``block_window`` block the account; None never
    blocks."""
    block_window: float = field(default=60.0, validator=_positive)
    """*Emulator's choice*: seconds of 429 history ``block_after`` looks at."""
    html_429: bool = False
    """Answer 429 with an HTML page instead of application/problem+json."""

    seed: int | None = 0
    """Seeds fault draws, latency draws, trace ids and generated tokens; None = unpredictable."""
    fault_rates: Mapping[FaultKind, float] = field(
        factory=lambda: MappingProxyType({}), converter=_convert_rates
    )
    """Probability per request of each fault kind ("500", "502", "503", "504", "reset",
    "commit-then-drop"); at most one fault is drawn per request."""
    fault_commit: float = field(default=0.5, validator=_probability)
    """Probability that a randomly drawn 5xx or reset is preceded by processing the request
    (the write is applied, then the 5xx is sent or the connection reset), as a real server
    may fail after committing. Drawn from a generator seeded by ``seed``; scripted faults
    say it themselves (``commit=True``)."""
    latency: tuple[float, float] | None = field(default=None, converter=_convert_latency)
    """Extra delay added to every request before processing: uniform in ``(low, high)``
    seconds; a single number means a fixed delay."""

    clock: Clock = time.monotonic
    """Monotonic time for rate limits, token expiry and the request log."""
    wall_clock: Clock = time.time
    """Unix time for description timestamps ("YYYY-MM-DD HH:MM:SS", UTC)."""

    max_name_length: int | None = field(default=255, validator=_positive_or_none)
    """*Emulator's choice*: longer pipeline and status names are refused (``TooLong``); None
    accepts any length."""
    sort_range: tuple[int, int] | None = field(default=(0, 2**31 - 1), validator=_sort_range)
    """*Emulator's choice*: ``sort`` outside ``(low, high)`` is refused (``OutOfRange``); None
    accepts any integer."""
    refuse_main_delete: bool = True
    """*Emulator's choice*: DELETE of the main pipeline is refused (400). False: it is deleted
    and the next pipeline by (sort, id) becomes the main one."""
    refuse_demoting_only: bool = True
    """*Emulator's choice*: ``is_main: false`` on the only pipeline is refused (400). False: it
    is ignored and the pipeline stays main (an account always has a main pipeline)."""

    seed_account: bool = True
    """True: the main pipeline of the spec examples ("Воронка", two regular statuses with
    descriptions). False: a main pipeline "Воронка" with only its three system statuses."""
    admin_token: str | None = None
    """The administrator's bearer token; None generates one (from ``seed`` when set)."""
    user_token: str | None = None
    """The non-admin user's bearer token; None generates one."""

    oauth_client_id: str = "emu-client-id"
    """The integration registered for OAuth (``/oauth2/access_token``); more can be added with
    ``Emulator.oauth.register()``."""
    oauth_client_secret: str = "emu-client-secret"
    oauth_redirect_uri: str = "https://integration.example/oauth/callback"
    access_token_lifetime: float = field(default=86400.0, validator=_positive)
    """Seconds an OAuth access token lives (the API: 1 day)."""
    refresh_token_lifetime: float = field(default=90 * 86400.0, validator=_positive)
    """Seconds an unused refresh token lives (the API: 3 months)."""
    code_lifetime: float = field(default=1200.0, validator=_positive)
    """Seconds an authorization code lives (the API: 20 minutes)."""

    client_max_size: int = 16 * 1024 * 1024
    shutdown_timeout: float = 2.0
