"""Fault injection: scripted per method/path, or drawn at random from a seeded generator."""

from __future__ import annotations

import contextlib
import fnmatch
import random
import re
import socket
import struct
from collections.abc import Mapping
from enum import Enum

from aiohttp import web
from attrs import define, field, frozen


class FaultKind(str, Enum):
    """What a fault does to a request."""

    HTTP_429 = "429"
    """429 Too Many Requests (the same body the rate limiter sends); nothing applied."""
    HTTP_500 = "500"
    """500 problem+json with a ``trace_id``; nothing applied unless ``commit``."""
    HTTP_502 = "502"
    """502 HTML page from the "proxy"; nothing applied unless ``commit``."""
    HTTP_503 = "503"
    HTTP_504 = "504"
    LATENCY = "latency"
    """Sleep ``delay`` seconds before processing, then answer normally."""
    RESET = "reset"
    """Connection reset (TCP RST) before the request is processed: nothing applied unless
    ``commit`` (then the request is processed first)."""
    COMMIT_THEN_DROP = "commit-then-drop"
    """The request is processed (a write is applied), then the connection is closed with no
    response."""
    LATE_COMMIT = "late-commit"
    """The request is processed ``delay`` seconds after it arrived, whether or not its client
    is still there; meanwhile the response is held (or, with ``drop``, the connection is
    closed at once)."""

    @classmethod
    def parse(cls, value: str | FaultKind) -> FaultKind:
        if isinstance(value, FaultKind):
            return value
        aliases = {
            "drop": cls.COMMIT_THEN_DROP,
            "commit_then_drop": cls.COMMIT_THEN_DROP,
            "late_commit": cls.LATE_COMMIT,
        }
        if value in aliases:
            return aliases[value]
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise ValueError(f"unknown fault kind {value!r} (known: {known})") from None

    @property
    def status_code(self) -> int | None:
        return int(self.value) if self.value.isdigit() else None


STATUS_FAULT_KINDS = frozenset(k for k in FaultKind if k.status_code is not None)
RANDOM_FAULT_KINDS = (
    FaultKind.HTTP_500,
    FaultKind.HTTP_502,
    FaultKind.HTTP_503,
    FaultKind.HTTP_504,
    FaultKind.RESET,
    FaultKind.COMMIT_THEN_DROP,
)
"""The kinds ``EmulatorConfig.fault_rates`` may name, in the order a draw walks them."""
COMMITTABLE_KINDS = frozenset(RANDOM_FAULT_KINDS) - {FaultKind.COMMIT_THEN_DROP}
"""Random kinds whose commit is drawn (``EmulatorConfig.fault_commit``); commit-then-drop
always commits."""


@frozen
class Fault:
    """One fault. Build it with the class methods: ``Fault.status(503)``, ``Fault.reset()``,
    ``Fault.commit_then_drop()``, ``Fault.latency(0.5)``, ``Fault.late_commit(2.5)``."""

    kind: FaultKind
    delay: float = 0.0
    """Seconds to sleep before processing (latency faults), or from arrival to the write
    (late commits)."""
    commit: bool = False
    """Status and reset faults: process the request (apply the write) first, then answer with
    the fault status instead of the real response, or reset the connection."""
    retry_after: float = 1.0
    """429 faults only: the ``retry_after`` the body carries."""
    drop: bool = False
    """Late commits only: close the connection at once instead of holding the response."""

    @classmethod
    def status(cls, code: int, *, commit: bool = False, retry_after: float = 1.0) -> Fault:
        """Answer with ``code`` (429, 500, 502, 503 or 504) instead of processing; with
        ``commit``, process the request first and answer ``code`` instead of its response."""
        kind = FaultKind.parse(str(code))
        if kind not in STATUS_FAULT_KINDS:
            raise ValueError(f"no status fault for {code!r}")
        return cls(kind, commit=commit, retry_after=retry_after)

    @classmethod
    def reset(cls, *, commit: bool = False) -> Fault:
        """Drop the connection with a TCP reset before the request is processed; with
        ``commit``, after it is processed."""
        return cls(FaultKind.RESET, commit=commit)

    @classmethod
    def commit_then_drop(cls) -> Fault:
        """Process the request, then close the connection without answering."""
        return cls(FaultKind.COMMIT_THEN_DROP, commit=True)

    @classmethod
    def late_commit(cls, delay: float, *, drop: bool = False) -> Fault:
        """Process the request ``delay`` seconds after it arrived, even if its client has
        given up by then. Meanwhile the response is held (the client times out; the real
        response follows the write, to whoever still listens), or with ``drop=True`` the
        connection is closed at once with no response. Until then, reads do not see the
        write."""
        if delay < 0:
            raise ValueError("delay must be >= 0")
        return cls(FaultKind.LATE_COMMIT, delay=float(delay), commit=True, drop=drop)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Sleep ``seconds`` before processing, then answer normally."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        return cls(FaultKind.LATENCY, delay=float(seconds))

    @property
    def outcome(self) -> str:
        """The request log outcome this fault produces."""
        return f"fault:{self.kind.value}"


@define
class ScriptedFault:
    """A fault waiting for matching requests; returned by :meth:`FaultInjector.add`."""

    fault: Fault
    method: str | None
    path: str | re.Pattern[str] | None
    remaining: int | None
    """How many more matching requests it hits; None = every one."""
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is None:
            return True
        if isinstance(self.path, re.Pattern):
            return self.path.fullmatch(path) is not None
        return fnmatch.fnmatchcase(path, self.path)


@define
class FaultInjector:
    """Picks at most one fault per request: the first matching scripted fault, otherwise a
    random one drawn from ``rates``.

    Random draws come from a generator seeded with the emulator's seed; one number is drawn for
    every request that reaches the fault stage (authenticated, not rate limited), whether or not
    a scripted fault fires, so a given seed and request sequence always fault the same way.
    Whether a drawn 5xx or reset commits (probability ``commit_rate``) comes from a second
    seeded generator, drawn once per drawn fault, so adding it left the faults drawn for a
    seed unchanged.
    """

    rates: Mapping[FaultKind, float]
    seed: int | None
    commit_rate: float = 0.0
    scripted: list[ScriptedFault] = field(factory=list)
    _rng: random.Random = field(init=False)
    _commit_rng: random.Random = field(init=False)

    def __attrs_post_init__(self) -> None:
        seed = self.seed
        self._rng = random.Random(None if seed is None else f"faults:{seed}")
        self._commit_rng = random.Random(None if seed is None else f"fault-commit:{seed}")

    def add(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        times: int | None = 1,
    ) -> ScriptedFault:
        """Fault the next ``times`` requests (None: all of them) matching ``method`` (any when
        None) and ``path`` (an exact path, a glob where ``*`` also matches ``/``, or a compiled
        regex that must match the whole path; any when None). Earlier entries win."""
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        entry = ScriptedFault(fault, None if method is None else method.upper(), path, times)
        self.scripted.append(entry)
        return entry

    def clear(self) -> None:
        """Forget every scripted fault."""
        self.scripted.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        drawn = self._draw()
        for entry in self.scripted:
            if entry.matches(method, path):
                entry.hits += 1
                if entry.remaining is not None:
                    entry.remaining -= 1
                return entry.fault
        return drawn

    def _draw(self) -> Fault | None:
        if not self.rates:
            return None
        roll = self._rng.random()
        cumulative = 0.0
        for kind in RANDOM_FAULT_KINDS:
            cumulative += self.rates.get(kind, 0.0)
            if roll < cumulative:
                if kind not in COMMITTABLE_KINDS:
                    return Fault(kind, commit=True)
                return Fault(kind, commit=self._commit_rng.random() < self.commit_rate)
        return None


def drop_connection(request: web.BaseRequest, *, reset: bool) -> None:
    """Close the request's connection without a response.

    ``reset=True`` sets SO_LINGER to zero first, so closing sends a TCP RST (an aiohttp client
    sees ``ClientOSError: Connection reset by peer``); otherwise the peer sees a plain close
    (``ServerDisconnectedError``). aiohttp's attempt to write the handler's response afterwards
    fails with a ConnectionError that it swallows.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


_PROXY_REASONS = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def proxy_error_page(status: int) -> str:
    """An nginx-style HTML error page, as a reverse proxy in front of amoCRM would send."""
    title = f"{status} {_PROXY_REASONS.get(status, 'Error')}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def blocked_page(subdomain: str) -> str:
    """The HTML page a blocked account gets with every 403."""
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>403 Forbidden</title>'
        "</head>\n<body>\n<h1>403 Forbidden</h1>\n"
        f"<p>Access for account {subdomain} has been blocked because of too many requests. "
        "Contact support.</p>\n</body>\n</html>\n"
    )


def too_many_requests_page() -> str:
    """The HTML variant of a 429 (``EmulatorConfig.html_429``)."""
    return (
        '<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>429 Too Many Requests'
        "</title></head>\n<body>\n<h1>429 Too Many Requests</h1>\n"
        "<p>Too many requests. Please slow down.</p>\n</body>\n</html>\n"
    )
