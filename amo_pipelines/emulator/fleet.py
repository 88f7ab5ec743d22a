""":class:`EmulatorFleet`: many independent accounts served by one process, one port each."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import attrs

from .config import EmulatorConfig
from .server import Emulator


def account_seed(seed: int | None, index: int) -> int | None:
    """Account ``index``'s seed: derived from the fleet's, so a fleet's faults and tokens are
    reproducible while no two accounts draw the same sequence (None stays None)."""
    if seed is None:
        return None
    # A digest rather than hash(): str hashes are salted per process, and the benchmark and
    # its server run in different processes.
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def account_config(config: EmulatorConfig, index: int) -> EmulatorConfig:
    """The config of account ``index`` (0-based) of a fleet built from ``config``."""
    changes: dict[str, Any] = {
        "port": config.port + index if config.port else 0,
        "account_id": config.account_id + index,
        "subdomain": f"{config.subdomain}{index + 1}",
        "seed": account_seed(config.seed, index),
    }
    # Given tokens get a suffix: one token must never open two accounts.
    if config.admin_token is not None:
        changes["admin_token"] = f"{config.admin_token}-{index + 1}"
    if config.user_token is not None:
        changes["user_token"] = f"{config.user_token}-{index + 1}"
    return attrs.evolve(config, **changes)


class EmulatorFleet:
    """``count`` independent accounts, each a full :class:`Emulator` on its own port.

    ``async with EmulatorFleet(20, config=EmulatorConfig(...)) as fleet:`` starts them all;
    ``fleet.accounts[i]`` is account ``i`` (0-based) with its own state, rate limits, tokens,
    stats and request log. Account ``i`` has ``account_id = config.account_id + i``, subdomain
    ``f"{config.subdomain}{i + 1}"``, the port ``config.port + i`` (an ephemeral one each when
    ``config.port`` is 0) and a seed derived from ``config.seed`` (:func:`account_seed`);
    given tokens get the suffix ``-{i + 1}``. Every other setting applies to every account.
    """

    def __init__(self, count: int, config: EmulatorConfig | None = None) -> None:
        if count < 1:
            raise ValueError(f"a fleet needs at least one account, got {count}")
        self.config = config if config is not None else EmulatorConfig()
        self.accounts: list[Emulator] = [
            Emulator(account_config(self.config, i)) for i in range(count)
        ]

    def __len__(self) -> int:
        return len(self.accounts)

    def __iter__(self) -> Iterator[Emulator]:
        return iter(self.accounts)

    def __getitem__(self, index: int) -> Emulator:
        return self.accounts[index]

    @property
    def urls(self) -> list[str]:
        return [emu.url for emu in self.accounts]

    @property
    def running(self) -> bool:
        return any(emu.running for emu in self.accounts)

    async def start(self) -> None:
        """Start every account at once; if any fails to listen, stop those that started and
        raise the first error."""
        if self.running:
            raise RuntimeError("the fleet is already running")
        try:
            results = await asyncio.gather(
                *(emu.start() for emu in self.accounts), return_exceptions=True
            )
        except BaseException:  # cancelled while starting: leave no listening socket behind
            await asyncio.shield(self.stop())
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]

    async def stop(self) -> None:
        """Stop every running account (late commits not applied yet are dropped)."""
        await asyncio.gather(*(emu.stop() for emu in self.accounts if emu.running))

    async def __aenter__(self) -> EmulatorFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def accounts_json(self) -> list[dict[str, Any]]:
        """What ``--accounts-file`` holds (tokens included): one object per account."""
        return [describe_account(emu, i) for i, emu in enumerate(self.accounts)]


def describe_account(emu: Emulator, index: int) -> dict[str, Any]:
    """One account as the accounts file lists it (tokens included: keep it private)."""
    return {
        "name": f"account-{index + 1}",
        "base_url": emu.url,
        "account_id": emu.config.account_id,
        "subdomain": emu.config.subdomain,
        "admin_token": emu.admin_token,
        "user_token": emu.user_token,
    }
