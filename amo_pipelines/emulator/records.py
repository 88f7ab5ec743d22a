"""What the emulator saw: per-request log entries and counters."""

from __future__ import annotations

import json
from typing import Any

from attrs import define, field


@define
class RequestLogEntry:
    """One request as the emulator received and answered it.

    The entry is appended when the request arrives and completed when it is answered, so a
    request whose connection was dropped is still there (``status`` None).
    """

    method: str
    path: str
    query: str
    """The raw query string, without the ``?``."""
    token: str | None = field(repr=False)
    """The bearer token presented, if any."""
    arrived_at: float
    """On the emulator's monotonic clock (``EmulatorConfig.clock``)."""
    body: bytes = field(default=b"", repr=False)
    status: int | None = None
    """The status sent; None while pending or when the connection was dropped."""
    outcome: str = "pending"
    """"ok" (2xx), the error status as a string ("400", "401", "429", ...), "blocked" (403 of a
    blocked account) or "fault:<kind>" ("fault:500", "fault:reset", "fault:commit-then-drop",
    "fault:late-commit")."""
    latency: float = 0.0
    """Seconds of injected latency before processing."""
    processed_status: int | None = None
    """For faults that process the request (commit-then-drop, status and reset faults with
    ``commit``, late commits once applied): the status the real response had."""
    finished_at: float | None = None
    """When the request was answered (or its connection dropped), on the same clock as
    ``arrived_at``; None while pending. ``[arrived_at, finished_at]`` is the window in which
    the request could have changed the account."""
    user_agent: str | None = None
    """The request's ``User-Agent`` header."""
    peer: str | None = None
    """The connection's remote ``host:port`` (``[host]:port`` for IPv6)."""
    token_kind: str | None = None
    """Whose token was presented, so logs can be shown without the token itself: "admin",
    "user" (a known non-admin token), "other" (unknown to the account) or None (none sent)."""

    @property
    def json(self) -> Any:
        """The request body parsed as JSON (None when empty)."""
        return json.loads(self.body) if self.body.strip() else None

    def public(self) -> dict[str, Any]:
        """The entry as ``GET /_emulator/log`` shows it: no token and no body (an OAuth
        request's body holds secrets)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "outcome": self.outcome,
            "arrived_at": self.arrived_at,
            "finished_at": self.finished_at,
            "latency": self.latency,
            "processed_status": self.processed_status,
            "user_agent": self.user_agent,
            "peer": self.peer,
            "token_kind": self.token_kind,
        }


@define
class Stats:
    """Counters since the emulator started (``Emulator.reset_limits`` does not clear them)."""

    requests: int = 0
    """Every request received, including rate-limited, blocked and faulted ones."""
    responses: dict[int, int] = field(factory=dict)
    """Responses sent, by status."""
    rate_limited: int = 0
    """429s sent by the rate limiter (scripted 429 faults are counted under ``faults``)."""
    blocks: int = 0
    """How many times the account got blocked."""
    blocked: bool = False
    """Whether the account is blocked right now."""
    blocked_requests: int = 0
    """403s sent because the account was blocked."""
    faults: dict[str, int] = field(factory=dict)
    """Faults injected, by kind ("500", "reset", "commit-then-drop", "latency", ...)."""
    faults_committed: dict[str, int] = field(factory=dict)
    """Of those, the ones whose request was processed (its write applied) anyway, by kind:
    status and reset faults with ``commit``, commit-then-drop, and late commits once applied."""
    internal_errors: int = 0
    """Emulator bugs turned into 500s (should stay 0)."""
    token_requests: int = 0
    """Requests to ``/oauth2/access_token``, whatever their outcome (also in ``requests``)."""
    token_grants: dict[str, int] = field(factory=dict)
    """Tokens issued by the token endpoint, by grant type ("authorization_code",
    "refresh_token")."""

    def count_response(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1

    def count_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_commit(self, kind: str) -> None:
        self.faults_committed[kind] = self.faults_committed.get(kind, 0) + 1

    def public(self) -> dict[str, Any]:
        """The counters as ``GET /_emulator/stats`` shows them (JSON object keys are
        strings, so ``responses`` is keyed by ``"200"``, ``"429"``, ...)."""
        return {
            "requests": self.requests,
            "responses": {str(code): n for code, n in sorted(self.responses.items())},
            "rate_limited": self.rate_limited,
            "blocks": self.blocks,
            "blocked": self.blocked,
            "blocked_requests": self.blocked_requests,
            "faults": dict(self.faults),
            "faults_committed": dict(self.faults_committed),
            "internal_errors": self.internal_errors,
            "token_requests": self.token_requests,
            "token_grants": dict(self.token_grants),
        }
