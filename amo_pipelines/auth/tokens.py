"""OAuth token sets and where they are kept between runs.

amoCRM refresh tokens are single-use: every refresh answers a new refresh token and kills
the old one. Whatever the provider obtains must therefore be saved *before* it is used,
or a crash between the two locks the integration out. A :class:`TokenStore` is that
durable place: two async methods, ``load`` and ``save``. The SDK ships
:class:`MemoryTokenStore` (tests, one-off scripts) and :class:`FileTokenStore` (one JSON
file, atomically replaced, mode 0600); anything else (a database row, a secrets manager)
is a small class with the same two methods.

A store may also offer ``lock()``: an async context manager that
:class:`~amo_pipelines.auth.oauth.OAuth2` holds around "reload, refresh, save", so that worker
*processes* sharing the store refresh one at a time (within one process the provider's
single flight already guarantees that). :class:`FileTokenStore` implements it with an
advisory ``fcntl.flock`` on a sidecar ``.lock`` file (POSIX; a no-op where ``fcntl`` is
missing, e.g. Windows). For a database store, a row lock or an advisory lock is the
natural ``lock()``.

Nothing here ever shows a token: reprs carry fingerprints, errors carry paths and reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from attrs import frozen

from ..errors import InvalidInputError, TokenStoreError
from ..model.inputs import check_text

try:  # POSIX only; FileTokenStore's lock is a no-op without it.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible id of a secret, for logs and reprs."""
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def check_token(token: object, where: str) -> str:
    """A token goes into a header: it must be a non-empty string with no control characters
    (a CR/LF would let it smuggle headers in). The message never shows the value."""
    if not isinstance(token, str) or not token.strip():
        raise InvalidInputError("must be a non-empty string", field=where)
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in token):
        raise InvalidInputError("must not contain spaces or control characters", field=where)
    return check_text(token, where)  # a lone surrogate can not go into a header or a body


class WallClock:
    """Unix time and :func:`asyncio.sleep`: token expiry must mean the same thing in every
    process and after a restart, so OAuth uses wall time, not the monotonic clock."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "WallClock()"


WALL_CLOCK = WallClock()


def _expiry(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError("must be a finite number", field=where)
    return float(value)


def _lifetime(value: object, where: str) -> float:
    lifetime = _expiry(value, where)
    if lifetime <= 0:
        raise InvalidInputError("must be positive", field=where)
    return lifetime


@frozen(repr=False)
class TokenSet:
    """An OAuth access token, its refresh token and when the access token expires.

    ``expires_at`` is in the provider clock's seconds: Unix time with the default clock.
    ``expires_in`` is the lifetime the server gave the access token (its ``expires_in``),
    when known: every process that loads the set from a store judges it by the same rule
    (see :class:`~amo_pipelines.OAuth2`'s ``refresh_margin``). Sets saved by earlier
    versions have none. The repr shows fingerprints only, never the tokens.
    """

    access_token: str
    refresh_token: str
    expires_at: float
    expires_in: float | None = None

    def __attrs_post_init__(self) -> None:
        check_token(self.access_token, "access_token")
        check_token(self.refresh_token, "refresh_token")
        object.__setattr__(self, "expires_at", _expiry(self.expires_at, "expires_at"))
        if self.expires_in is not None:
            object.__setattr__(self, "expires_in", _lifetime(self.expires_in, "expires_in"))

    @classmethod
    def from_response(cls, data: Mapping[str, Any], *, now: float) -> TokenSet:
        """Read the token endpoint's answer (``token_type``, ``expires_in``, ``access_token``,
        ``refresh_token``); ``now`` is when the request was sent, so expiry errs early."""
        token_type = data.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise InvalidInputError("must be Bearer", field="token_type")
        expires_in = _lifetime(data.get("expires_in"), "expires_in")
        return cls(
            access_token=data.get("access_token"),  # type: ignore[arg-type]  # checked
            refresh_token=data.get("refresh_token"),  # type: ignore[arg-type]
            expires_at=now + expires_in,
            expires_in=expires_in,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form stores keep (it holds the secrets: keep it private).

        ``expires_in`` is there when known; readers of older versions ignore it."""
        data: dict[str, Any] = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
        }
        if self.expires_in is not None:
            data["expires_in"] = self.expires_in
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        """The inverse of :meth:`to_dict`; :class:`InvalidInputError` names a bad field.
        A set without ``expires_in`` (saved by an earlier version) reads as before."""
        return cls(
            access_token=data.get("access_token"),  # type: ignore[arg-type]  # checked
            refresh_token=data.get("refresh_token"),  # type: ignore[arg-type]
            expires_at=data.get("expires_at"),  # type: ignore[arg-type]
            expires_in=data.get("expires_in"),
        )

    def __repr__(self) -> str:
        return (
            f"TokenSet(access=<{fingerprint(self.access_token)}>, "
            f"refresh=<{fingerprint(self.refresh_token)}>, expires_at={self.expires_at:.0f})"
        )


@runtime_checkable
class TokenStore(Protocol):
    """Where the current :class:`TokenSet` lives between runs and across processes.

    ``save`` must be durable when it returns: the provider uses a new access token only
    after its refresh token is saved. ``load`` returns ``None`` when nothing was saved yet.
    Optionally a store has ``lock()``, an async context manager serializing refreshes
    across processes (see the module docstring).
    """

    async def load(self) -> TokenSet | None: ...

    async def save(self, tokens: TokenSet) -> None: ...


class MemoryTokenStore:
    """Keeps the tokens in this process only: tests, scripts, or tokens you persist yourself
    (read ``tokens`` after the run)."""

    def __init__(self, tokens: TokenSet | None = None) -> None:
        self.tokens = tokens
        self.saves = 0
        """How many times :meth:`save` was called."""

    async def load(self) -> TokenSet | None:
        return self.tokens

    async def save(self, tokens: TokenSet) -> None:
        self.tokens = tokens
        self.saves += 1

    def __repr__(self) -> str:
        return f"MemoryTokenStore({self.tokens!r})"


class FileTokenStore:
    """One JSON file holding the tokens, readable by its owner only.

    ``save`` creates the file's folder (mode 0700) if it is missing, writes a temporary
    file (mode 0600) in that folder, fsyncs it and ``os.replace``\\ s the old file, so
    readers only ever see a whole token set and a crash leaves the previous one. Blocking
    file I/O runs in a thread.

    ``lock`` (default on): ``lock()`` takes an exclusive ``fcntl.flock`` on ``<path>.lock``,
    so that processes sharing the file refresh one at a time; waiting longer than
    ``lock_timeout`` seconds raises :class:`TokenStoreError`. Without ``fcntl`` (Windows)
    the lock does nothing: there, run one refreshing process or bring a store with a lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock: bool = True,
        lock_timeout: float = 120.0,
        lock_poll: float = 0.05,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._use_lock = lock and fcntl is not None
        self._lock_timeout = lock_timeout
        self._lock_poll = lock_poll
        # Saves from this process land in call order.
        self._save_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    async def load(self) -> TokenSet | None:
        return await asyncio.to_thread(self._read)

    async def save(self, tokens: TokenSet) -> None:
        data = json.dumps(tokens.to_dict(), indent=2).encode()
        async with self._save_lock:
            await asyncio.to_thread(self._write, data)

    def _read(self) -> TokenSet | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise TokenStoreError(f"can not read {self.path}: {e.strerror}") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return TokenSet.from_dict(data)
        except (ValueError, UnicodeDecodeError) as e:
            # Never chain the parser's exception: it may hold the document, tokens included.
            reason = e.field if isinstance(e, InvalidInputError) else "not a token set"
            raise TokenStoreError(f"{self.path} is not a usable token file ({reason})") from None

    def _make_directory(self) -> None:
        """Create the file's folder, readable by its owner only, if it is missing."""
        directory = self.path.parent
        if directory.is_dir():
            return
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise TokenStoreError(f"can not create {directory}: {e.strerror}") from None

    def _write(self, data: bytes) -> None:
        directory = self.path.parent
        self._make_directory()
        try:
            # mkstemp creates the file with mode 0600 whatever the umask.
            fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as e:
            raise TokenStoreError(f"can not write in {directory}: {e.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(e, OSError):
                raise TokenStoreError(f"can not save {self.path}: {e.strerror}") from None
            raise
        _fsync_directory(directory)

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold the cross-process refresh lock (see the class docstring)."""
        if not self._use_lock or fcntl is None:
            yield
            return
        try:
            self._make_directory()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise TokenStoreError(f"can not open {self.lock_path}: {e.strerror}") from None
        try:
            deadline = time.monotonic() + self._lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TokenStoreError(
                            f"waited {self._lock_timeout:g}s for {self.lock_path}"
                        ) from None
                    # Polling, not a blocking flock in a thread: a cancelled wait must not
                    # leave a thread behind that takes the lock later and never lets go.
                    await asyncio.sleep(self._lock_poll)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless to skip where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
