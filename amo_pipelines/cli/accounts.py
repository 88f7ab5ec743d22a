"""Which accounts a command talks to, and opening clients for them.

An account is written ``emulator`` (a fresh embedded emulator with the API pages' example
account), ``emulator:empty`` (one with only an empty main pipeline) or a base URL such as
``https://example.amocrm.ru``. A real account's token comes from the environment:
``AMO_TOKEN_<SUBDOMAIN>`` (upper case, ``-`` as ``_``) if set, else ``AMO_TOKEN``; or from an
OAuth token file (``--token-file``, as :class:`~amo_pipelines.FileTokenStore` writes it),
refreshed when ``AMO_CLIENT_ID``, ``AMO_CLIENT_SECRET`` and ``AMO_REDIRECT_URI`` are set.
Tokens are never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from attrs import frozen

from .. import (
    MAX_CUSTOM_STATUSES_PER_PIPELINE,
    AmoClient,
    AuthProvider,
    FileTokenStore,
    OAuth2,
    TokenSet,
)


class UsageError(Exception):
    """A command line or targets file that can not be used; exit status 1 (or 2 from
    argparse)."""


@frozen
class Account:
    spec: str
    """``emulator``, ``emulator:empty`` or a base URL."""
    token_env: str | None = None
    token_file: str | None = None
    name: str | None = None
    """A label for progress and the id map (``copy --via taskiq``); the host by default."""

    @property
    def is_emulator(self) -> bool:
        return self.spec in ("emulator", "emulator:empty")


def token_env_names(base_url: str) -> list[str]:
    host = re.sub(r"^[a-z]+://", "", base_url).split("/")[0].split(":")[0]
    sub = re.sub(r"[^A-Za-z0-9]", "_", host.split(".")[0]).upper()
    return [f"AMO_TOKEN_{sub}", "AMO_TOKEN"]


def _auth(account: Account, env: Mapping[str, str]) -> tuple[str | None, AuthProvider | None]:
    if account.token_file:
        client = [env.get(k) for k in ("AMO_CLIENT_ID", "AMO_CLIENT_SECRET", "AMO_REDIRECT_URI")]
        store = FileTokenStore(account.token_file)
        if all(client):
            cid, secret, redirect = (str(v) for v in client)
            return None, OAuth2(cid, secret, redirect, store=store)
        try:
            data = json.loads(Path(account.token_file).read_text(encoding="utf-8"))
            return TokenSet.from_dict(data).access_token, None
        except (OSError, ValueError):
            raise UsageError(f"{account.token_file} is not a readable token file") from None
    names = [account.token_env] if account.token_env else token_env_names(account.spec)
    for name in names:
        value = env.get(name or "")
        if value:
            return value, None
    raise UsageError(
        f"no token for {account.spec}: set {' or '.join(n for n in names if n)} "
        "(or use --token-file)"
    )


def _client(url: str, token: str | None, auth: AuthProvider | None) -> AmoClient:
    # A pipeline's statuses in one POST: 97 custom statuses fit in one request.
    options: dict[str, Any] = {"batch_size": MAX_CUSTOM_STATUSES_PER_PIPELINE}
    if auth is not None:
        return AmoClient(base_url=url, auth=auth, **options)
    return AmoClient(base_url=url, access_token=token, **options)


@contextlib.asynccontextmanager
async def open_account(
    account: Account, env: Mapping[str, str] | None = None
) -> AsyncIterator[AmoClient]:
    """A client for the account (starting an emulator if it is one), closed on exit."""
    env = os.environ if env is None else env
    if account.is_emulator:
        from ..emulator import Emulator, EmulatorConfig  # only when asked for

        config = EmulatorConfig(seed_account=account.spec != "emulator:empty", seed=None)
        async with Emulator(config) as emu, _client(emu.url, emu.admin_token, None) as amo:
            yield amo
        return
    token, auth = _auth(account, env)
    async with _client(account.spec, token, auth) as amo:
        yield amo


def account_from_args(base_url: str | None, token_file: str | None) -> Account:
    if base_url:
        return Account(base_url, token_file=token_file)
    if token_file:
        raise UsageError("--token-file needs --base-url")
    return Account("emulator")


def load_targets(path: str) -> list[Account]:
    """A targets file: a list (YAML or JSON) of base URLs, or of mappings with ``base_url``
    and optionally ``token_env`` (the variable holding its token) or ``token_file``, and
    ``name`` (its label in progress and the id map; the host by default)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    data: Any = None
    json_error = None
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except ValueError as e:  # maybe YAML's flow style: [{base_url: ...}]
            json_error = e
    if data is None:
        from ..funnels import ExtraMissingError

        try:
            import yaml
        except ImportError:
            if json_error is not None:
                raise UsageError(f"{path}: not valid JSON ({json_error})") from None
            raise ExtraMissingError("PyYAML", f"reading {path}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            line = f":{where.line + 1}" if where is not None else ""
            kind = "JSON or YAML" if json_error is not None else "YAML"
            raise UsageError(f"{path}{line}: not valid {kind}") from None
    if isinstance(data, dict) and "targets" in data:
        data = data["targets"]
    if not isinstance(data, list) or not data:
        raise UsageError(f"{path}: expected a list of targets")
    accounts = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            accounts.append(Account(item))
        elif isinstance(item, dict) and isinstance(item.get("base_url"), str):
            extra = set(item) - {"base_url", "token_env", "token_file", "name"}
            if extra:
                raise UsageError(f"{path}: targets[{i}]: unknown keys {sorted(map(str, extra))}")
            for key in ("token_env", "token_file", "name"):
                value = item.get(key)
                if value is not None and (not isinstance(value, str) or not value.strip()):
                    raise UsageError(f"{path}: targets[{i}].{key}: must be a non-empty string")
            token_env, token_file = item.get("token_env"), item.get("token_file")
            accounts.append(Account(item["base_url"], token_env, token_file, item.get("name")))
        else:
            raise UsageError(f"{path}: targets[{i}]: expected a URL or a mapping with base_url")
    return accounts
