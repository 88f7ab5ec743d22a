"""The :class:`Emulator`: an account, its application and a loopback HTTP server."""

from __future__ import annotations

import asyncio
import random
import secrets
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import build_app
from .config import EmulatorConfig
from .faults import FaultInjector
from .gateway import Runtime
from .limits import RateLimiter
from .oauth import OAuthServer
from .records import RequestLogEntry, Stats
from .seeding import seed_account
from .state import AccountState


class Emulator:
    """An embedded amoCRM account serving the leads pipelines API over HTTP.

    ``async with Emulator(EmulatorConfig(...)) as emu:`` starts it on ``config.host`` and
    ``config.port`` (an ephemeral loopback port by default); ``emu.url`` is then where it
    listens. ``start()``/``stop()`` do the same without a ``with`` block. ``emu.app`` can also be
    served by other means (e.g. aiohttp's test server) without ``start()``.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        cfg = self.config
        self.state = AccountState(
            account_id=cfg.account_id,
            wall_clock=cfg.wall_clock,
            refuse_main_delete=cfg.refuse_main_delete,
            refuse_demoting_only=cfg.refuse_demoting_only,
        )
        seed_account(self.state, like_spec=cfg.seed_account)
        self.admin_token, self.user_token = self._tokens()
        self.state.add_token(self.admin_token, admin=True, user_id=1)
        self.state.add_token(self.user_token, admin=False, user_id=2)
        self.stats = Stats()
        self.request_log: list[RequestLogEntry] = []
        self.faults = FaultInjector(cfg.fault_rates, cfg.seed, cfg.fault_commit)
        self._limiter = RateLimiter(
            token_rps=cfg.token_rps,
            account_rps=cfg.account_rps,
            window=cfg.window,
            block_after=cfg.block_after,
            block_window=cfg.block_window,
            count_rejected=cfg.count_rejected,
        )
        seed = cfg.seed
        self._runtime = runtime = Runtime(
            config=cfg,
            state=self.state,
            stats=self.stats,
            log=self.request_log,
            limiter=self._limiter,
            faults=self.faults,
            latency_rng=random.Random(None if seed is None else f"latency:{seed}"),
            trace_rng=random.Random(None if seed is None else f"trace:{seed}"),
        )
        self.oauth = OAuthServer(
            self.state,
            clock=cfg.clock,
            access_lifetime=cfg.access_token_lifetime,
            refresh_lifetime=cfg.refresh_token_lifetime,
            code_lifetime=cfg.code_lifetime,
            seed=seed,
        )
        self.oauth.register(cfg.oauth_client_id, cfg.oauth_client_secret, cfg.oauth_redirect_uri)
        self.app: web.Application = build_app(runtime, self.oauth)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    def _tokens(self) -> tuple[str, str]:
        cfg = self.config
        if cfg.seed is None:
            admin, user = secrets.token_hex(16), secrets.token_hex(16)
        else:
            rng = random.Random(f"tokens:{cfg.seed}")
            admin, user = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(128):032x}"
        return (
            cfg.admin_token or f"emu-admin-{admin}",
            cfg.user_token or f"emu-user-{user}",
        )

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server, no trailing slash."""
        if self._url is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.config.shutdown_timeout
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self._url = f"http://{shown}:{port}"
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving; late commits not applied yet are dropped (see :meth:`settle`)."""
        runner, self._runner = self._runner, None
        self._url = None
        pending = list(self._runtime.pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()

    @property
    def pending_commits(self) -> int:
        """Late commits (``Fault.late_commit``) waiting to be applied."""
        return len(self._runtime.pending)

    async def settle(self) -> None:
        """Wait until every pending late commit has been applied."""
        while self._runtime.pending:
            await asyncio.gather(*self._runtime.pending, return_exceptions=True)

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def reset_limits(self) -> None:
        """Clear the rate-limit windows, the 429 history and the block."""
        self._limiter.reset()
        self.stats.blocked = False

    @property
    def blocked(self) -> bool:
        return self._limiter.blocked

    def clear_log(self) -> None:
        self.request_log.clear()

    def issue_code(
        self, *, client_id: str | None = None, admin: bool = True, user_id: int = 1
    ) -> str:
        """An authorization code, as an administrator granting access would produce (for
        ``client_id``; default: the config's client). Exchange it at ``/oauth2/access_token``."""
        return self.oauth.issue_code(client_id=client_id, admin=admin, user_id=user_id)

    def issue_tokens(
        self,
        *,
        client_id: str | None = None,
        admin: bool = True,
        user_id: int = 1,
        access_lifetime: float | None = None,
    ) -> dict[str, Any]:
        """A fresh OAuth token pair without the code step, as the token endpoint's JSON."""
        return self.oauth.issue_tokens(
            client_id=client_id, admin=admin, user_id=user_id, access_lifetime=access_lifetime
        )
