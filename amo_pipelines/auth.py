"""Authentication providers: they put the bearer token on requests.

A provider never exposes its secret through ``repr``/``str``; the token only ever lives in
the ``Authorization`` header of requests bound for the account's own host.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .errors import InvalidInputError
from .transport.base import Request, Response


@runtime_checkable
class AuthProvider(Protocol):
    async def token(self) -> str:
        """The access token to send now (refreshing first if the provider can)."""
        ...

    async def on_unauthorized(self, request: Request, response: Response) -> bool:
        """A 401 came back for a request that used ``token``; return True to retry once."""
        ...

    @property
    def fingerprint(self) -> str:
        """A stable, non-secret id of the integration, for rate-limit keys and logs."""
        ...


def check_token(token: object, where: str) -> str:
    """A token goes into a header: it must be a non-empty string with no control characters
    (a CR/LF would let it smuggle headers in). The message never shows the value."""
    if not isinstance(token, str) or not token.strip():
        raise InvalidInputError("must be a non-empty string", field=where)
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in token):
        raise InvalidInputError("must not contain spaces or control characters", field=where)
    return token


def fingerprint(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class LongLivedToken:
    """A fixed access token: a private integration's long-lived token, or any bearer token."""

    def __init__(self, token: str) -> None:
        check_token(token, "access_token")
        self._token = token
        self._fingerprint = fingerprint(token)

    async def token(self) -> str:
        return self._token

    async def on_unauthorized(self, request: Request, response: Response) -> bool:
        return False

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"LongLivedToken(<redacted {self._fingerprint}>)"
