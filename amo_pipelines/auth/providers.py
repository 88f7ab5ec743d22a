"""What the client asks of an auth provider, and the simplest one.

* :class:`AuthProvider`: the access token to send, what to do after a 401, and a
  non-secret fingerprint (it keys the integration's rate limit).
* :class:`KnowsTokenDue`, :class:`UsesTokenEndpoint`: what a provider may offer besides
  (:class:`~amo_pipelines.auth.oauth.OAuth2` offers both), and :class:`TokenEndpoint`, the
  route to ``/oauth2/access_token`` the client hands such a provider.
* :class:`LongLivedToken`: a fixed token. ``AmoClient(access_token=...)`` is a shortcut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from yarl import URL

from ..transport.base import Request, Response
from .tokens import check_token, fingerprint

TOKEN_PATH = "/oauth2/access_token"


@runtime_checkable
class AuthProvider(Protocol):
    async def token(self) -> str:
        """The access token to send now (refreshing first if the provider can)."""
        ...

    async def on_unauthorized(self, request: Request, response: Response) -> bool:
        """A 401 came back for ``request`` (as sent, ``Authorization`` header included);
        return True to have it sent once more with a new ``token()``."""
        ...

    @property
    def fingerprint(self) -> str:
        """A stable, non-secret id of the integration, for rate-limit keys and logs."""
        ...


@runtime_checkable
class KnowsTokenDue(Protocol):
    """A provider whose token falls due: it can say, without waiting, whether the token it
    would send is still good to send. The client asks once more when a request has waited
    for its rate-limit slot, so that no request carries a token past the moment the
    provider (or another process sharing its store) replaces it."""

    def ready_token(self) -> str | None:
        """The access token to send right now, or None if it is due for a refresh."""
        ...


@runtime_checkable
class TokenEndpoint(Protocol):
    """The account's OAuth token endpoint, as an :class:`~amo_pipelines.AmoClient` offers it to
    its provider (see the module docstring for the route it takes)."""

    @property
    def origin(self) -> URL:
        """The account's origin, e.g. ``https://example.amocrm.ru``."""
        ...

    async def post(self, payload: Mapping[str, str]) -> Response:
        """POST ``payload`` as JSON to ``/oauth2/access_token``; any status comes back as a
        response, transport failures raise."""
        ...


@runtime_checkable
class UsesTokenEndpoint(Protocol):
    """A provider that talks to the token endpoint. The client calls ``attach`` when it is
    created and ``detach`` (which waits for a refresh in flight) when it closes."""

    def attach(self, endpoint: TokenEndpoint) -> None: ...

    async def detach(self, endpoint: TokenEndpoint) -> None: ...


class LongLivedToken:
    """A fixed access token: a private integration's long-lived token, or any bearer token."""

    def __init__(self, token: str) -> None:
        check_token(token, "access_token")
        self._token = token
        self._fingerprint = fingerprint(token)

    async def token(self) -> str:
        return self._token

    def fixed_token(self) -> str:
        """The token, which never changes: the client signs requests with it directly."""
        return self._token

    async def on_unauthorized(self, request: Request, response: Response) -> bool:
        return False

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"LongLivedToken(<redacted {self._fingerprint}>)"
