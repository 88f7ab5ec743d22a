"""How a client sends: one frozen value, validated once, from which the chain is built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import attrs
from attrs import evolve, field, frozen

from .._version import __version__
from ..budget.limiter import RateLimiter
from ..errors import InvalidInputError
from ..model.constants import RECOMMENDED_BATCH_SIZE
from ..model.inputs import check_seconds, check_text
from ..resources.batch import OnAmbiguous, check_batch_options
from ..transport.aiohttp import check_max_response_bytes, check_timeout
from .chain import Policy
from .circuit import CircuitBreaker
from .clock import SYSTEM_CLOCK, Clock
from .retry import RetryPolicy

USER_AGENT = f"amo_pipelines/{__version__}"


def _policies(value: Sequence[Policy]) -> tuple[Policy, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInputError("must be a list of policies", field="policies")
    for i, policy in enumerate(value):
        if not callable(getattr(policy, "send", None)):
            raise InvalidInputError(
                "must have send(request, next), like amo_pipelines.Policy",
                field=f"policies[{i}]",
            )
    return tuple(value)


def _optional_seconds(value: float | None) -> float | None:
    return None if value is None else check_seconds(value, "reconcile_wait")


def _user_agent(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("must be a non-empty string", field="user_agent")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInputError("must not hold control characters", field="user_agent")
    return check_text(value, "user_agent")


def _instance(kind: type, where: str, *, optional: bool = False) -> Any:
    def check(_: object, __: object, value: object) -> None:
        if not (isinstance(value, kind) or (optional and value is None)):
            raise InvalidInputError(f"must be a {kind.__name__}", field=where)

    return check


@frozen(kw_only=True)
class ClientConfig:
    """Everything about how an :class:`~amo_pipelines.AmoClient` sends, apart from which
    account (``base_url``), with which credentials (``access_token`` / ``auth``) and over
    what (``transport`` / ``session``). Validated when built; one config may serve many
    clients (``AmoClient(config=..., ...)``), and :func:`attrs.evolve` derives another.

    ``timeout`` and ``max_response_bytes`` configure the default transport (``None``: its
    defaults: 60 s in all, 32 MiB). ``log_bodies``: the DEBUG request log shows bodies
    (never the token endpoint's). ``retry`` decides what is retried. ``rate_limiter`` and
    ``circuit_breaker`` (``None``: the running event loop's defaults for ``clock``) keep
    the account's budget and block. ``clock`` drives every wait of the client: retry
    backoffs, batch pauses, and the default limiter and breaker. ``batch_size``,
    ``on_ambiguous`` and ``reconcile_wait`` shape batch creates (``None``: twice the
    transport's total timeout, 120 s where it has none). ``user_agent`` is sent with
    every request. ``policies``: your own :class:`~amo_pipelines.Policy` objects, run for
    each attempt of each API request, after its rate-limit grant and its token (see
    :class:`~amo_pipelines.AmoClient`).
    """

    timeout: aiohttp.ClientTimeout | float | None = field(default=None, converter=check_timeout)
    max_response_bytes: int | None = field(default=None)
    log_bodies: bool = field(default=False, validator=_instance(bool, "log_bodies"))
    clock: Clock = SYSTEM_CLOCK
    retry: RetryPolicy = field(factory=RetryPolicy, validator=_instance(RetryPolicy, "retry"))
    rate_limiter: RateLimiter | None = field(
        default=None, validator=_instance(RateLimiter, "rate_limiter", optional=True)
    )
    circuit_breaker: CircuitBreaker | None = field(
        default=None, validator=_instance(CircuitBreaker, "circuit_breaker", optional=True)
    )
    batch_size: int = RECOMMENDED_BATCH_SIZE
    on_ambiguous: OnAmbiguous = "reconcile"
    reconcile_wait: float | None = field(default=None, converter=_optional_seconds)
    user_agent: str = field(default=USER_AGENT, converter=_user_agent)
    policies: tuple[Policy, ...] = field(default=(), converter=_policies)

    def __attrs_post_init__(self) -> None:
        if self.max_response_bytes is not None:
            check_max_response_bytes(self.max_response_bytes)
        if not callable(getattr(self.clock, "now", None)) or not callable(
            getattr(self.clock, "sleep", None)
        ):
            raise InvalidInputError("must have now() and sleep(seconds)", field="clock")
        if self.retry.clock is not SYSTEM_CLOCK and self.retry.clock is not self.clock:
            raise InvalidInputError(
                "the retry policy has a clock of its own: give the one clock as clock=",
                field="retry",
            )
        check_batch_options(self.batch_size, self.on_ambiguous)


CONFIG_FIELDS = frozenset(attrs.fields_dict(ClientConfig))
"""AmoClient's keyword arguments that fill its :class:`ClientConfig`."""


def configure(config: ClientConfig | None, fields: dict[str, Any]) -> ClientConfig:
    """``config`` (default: the defaults) with the fields given (not ``None``) replaced."""
    given = {name: value for name, value in fields.items() if value is not None}
    retry = given.get("retry")
    if "clock" not in given and config is None and isinstance(retry, RetryPolicy):
        given["clock"] = retry.clock  # a retry policy on a FakeClock puts the client on it
    if config is None:
        return ClientConfig(**given)
    if not isinstance(config, ClientConfig):
        raise InvalidInputError("must be a ClientConfig", field="config")
    return evolve(config, **given) if given else config  # evolve validates again
