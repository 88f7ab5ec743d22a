"""Accounts as a fleet task names them, and where a worker finds their tokens.

A task message is kept in the broker's stream (and its copies in the consumer group's
pending list) for as long as the stream lives, so it carries no secret: an
:class:`AccountRef` names the account (its base URL and a label) and says where the token
is, never what it is:

* ``token_key``: a Redis key (on the fleet's Redis) that the enqueuer filled before it
  enqueued (:func:`put_access_token`, :func:`put_token_set`): either an OAuth token pair in
  :class:`~amo_pipelines.redis.RedisTokenStore`'s format, refreshed by the workers (one
  refresh for all of them) when ``AMO_CLIENT_ID``, ``AMO_CLIENT_SECRET`` and
  ``AMO_REDIRECT_URI`` are set in their environment, or a long-lived token
  (``{"access_token": ...}``, which expires with the job);
* ``token_env``: the name of a variable in the worker's environment;
* neither: ``AMO_TOKEN_<SUBDOMAIN>`` or else ``AMO_TOKEN`` in the worker's environment,
  as for the CLI.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen
from yarl import URL

from .. import AuthProvider, InvalidInputError, OAuth2, TokenSet

_KEYS = ("base_url", "name", "token_key", "token_env")


class FleetError(Exception):
    """A fleet task can not run for an account (no token, a malformed reference, a missing
    job spec). Its message names the account and where the token was looked for, never
    a token."""


@frozen
class AccountRef:
    """One account of a fleet task: ``base_url``, a ``name`` shown in progress (its host by
    default) and where its token is (see the module)."""

    base_url: str
    name: str | None = None
    token_key: str | None = None
    token_env: str | None = None

    def __attrs_post_init__(self) -> None:
        url = URL(self.base_url) if isinstance(self.base_url, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise InvalidInputError("must be an http(s) URL", field="base_url")
        for key in ("name", "token_key", "token_env"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidInputError("must be a non-empty string", field=key)

    @property
    def label(self) -> str:
        """The name in progress records and results: ``name``, else ``host[:port]``."""
        if self.name:
            return self.name
        url = URL(self.base_url)
        default = {"https": 443, "http": 80}.get(url.scheme)
        return f"{url.host}:{url.port}" if url.port not in (None, default) else str(url.host)

    def to_data(self) -> dict[str, str]:
        return {k: v for k in _KEYS if (v := getattr(self, k)) is not None}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | str) -> AccountRef:
        """From a task argument: a URL, or a mapping with ``base_url`` and optionally
        ``name``, ``token_key``, ``token_env``; :class:`InvalidInputError` otherwise."""
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, Mapping):
            raise InvalidInputError("must be a URL or a mapping", field="account")
        extra = sorted(map(str, set(data) - set(_KEYS)))
        if extra:
            raise InvalidInputError(f"unknown keys {extra}", field="account")
        if not isinstance(data.get("base_url"), str):
            raise InvalidInputError("is missing", field="base_url")
        return cls(**{k: data[k] for k in _KEYS if k in data})


def token_key(prefix: str, ref: AccountRef) -> str:
    """The key :func:`put_access_token` uses by default: in the account's cluster slot."""
    host = ref.label.replace("{", "(").replace("}", ")")
    return f"{prefix}:{{{host}}}:fleet-token"


def env_names(base_url: str) -> list[str]:
    host = URL(base_url).host or ""
    sub = re.sub(r"[^A-Za-z0-9]", "_", host.split(".")[0]).upper()
    return [f"AMO_TOKEN_{sub}", "AMO_TOKEN"]


async def put_access_token(redis: Any, key: str, token: str, *, ttl: float) -> None:
    """Store a long-lived token for the workers; it expires after ``ttl`` seconds."""
    await redis.set(key, json.dumps({"access_token": token}), px=int(ttl * 1000))


async def put_token_set(redis: Any, key: str, tokens: TokenSet) -> None:
    """Store an OAuth pair unless the key holds one already: the workers may have
    refreshed it since (the refresh token in ``tokens`` would then be spent)."""
    await redis.set(key, json.dumps(tokens.to_dict()), nx=True)


async def resolve_auth(
    ref: AccountRef, redis: Any, env: Mapping[str, str] | None = None
) -> tuple[str | None, AuthProvider | None]:
    """The access token, or an auth provider (OAuth2 over a RedisTokenStore), for ``ref``;
    :class:`FleetError` saying where it looked when there is none."""
    env = os.environ if env is None else env
    if ref.token_key:
        raw = await redis.get(ref.token_key)
        if raw is None:
            raise FleetError(
                f"no token for {ref.label}: Redis key {ref.token_key} is missing "
                "(expired, or never stored by the enqueuer)"
            )
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise FleetError(f"Redis key {ref.token_key} holds no token for {ref.label}")
        if "refresh_token" not in data:
            return data["access_token"], None
        client = [env.get(k) for k in ("AMO_CLIENT_ID", "AMO_CLIENT_SECRET", "AMO_REDIRECT_URI")]
        if all(client):
            from ..redis import RedisTokenStore

            store = RedisTokenStore(redis, ref.token_key)
            cid, secret, redirect = (str(v) for v in client)
            return None, OAuth2(cid, secret, redirect, store=store)
        return str(data["access_token"]), None
    names = [ref.token_env] if ref.token_env else env_names(ref.base_url)
    for name in names:
        value = env.get(name or "")
        if value:
            return value, None
    raise FleetError(f"no token for {ref.label}: set {' or '.join(map(str, names))} on the workers")
