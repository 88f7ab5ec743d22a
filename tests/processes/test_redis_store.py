"""The Redis stores against a real redis-server (see the ``redis_url`` fixture)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
from support.constants import ACCOUNT

pytest.importorskip("redis")  # the test extra installs it; the fixture fails in CI without it

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from amo_pipelines import (
    NO_RETRY,
    AmoClient,
    RateLimiter,
    RateLimitStoreError,
    TokenSet,
    TokenStoreError,
)
from amo_pipelines.budget.windows import Denied, Granted, PenaltyRule, Window
from amo_pipelines.redis import RedisTokenStore, RedisWindowStore
from amo_pipelines.testing import MockTransport, json_response

RULE = PenaltyRule(factor=0.5, step=0.1, interval=1.0, minimum=1 / 64)
WINDOW = Window("a|example.amocrm.ru", 50, 1.0)
TOKENS = TokenSet("access-aaa", "refresh-bbb", expires_at=2_000_000_000.0, expires_in=86400)
NEWER = TokenSet("access-ccc", "refresh-ddd", expires_at=2_000_086_400.0, expires_in=86400)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def prefix() -> str:
    return f"t{os.urandom(4).hex()}"


async def test_lost_keys_mean_no_grant_for_a_lease_and_a_period(redis: aioredis.Redis) -> None:
    store = RedisWindowStore(redis, prefix=prefix(), lease=2.0)
    first = await store.acquire_account(ACCOUNT, [WINDOW], RULE)
    assert isinstance(first, Denied) and 2.9 < first.retry_after <= 3.0
    await redis.delete(*(await redis.keys(f"{store.prefix}:*")))  # as a flush would
    again = await store.acquire_account(ACCOUNT, [WINDOW], RULE)
    assert isinstance(again, Denied) and 2.9 < again.retry_after <= 3.0


async def test_keys_share_the_account_hash_tag_and_expire(redis: aioredis.Redis) -> None:
    store = RedisWindowStore(redis, prefix=prefix(), lease=0.3)
    while not isinstance(grant := await store.acquire_account(ACCOUNT, [WINDOW], RULE), Granted):
        assert isinstance(grant, Denied)
        await asyncio.sleep(grant.retry_after)
    await store.note_429(ACCOUNT, 0.0, RULE)
    keys = await redis.keys(f"{store.prefix}:*")
    assert len(keys) == 3  # fence, state, one window
    for key in keys:
        assert b"{example.amocrm.ru}" in key
        assert await redis.pttl(key) > 0
    await store.complete(grant, 0.0)


async def test_redis_down_fails_the_request_unsent() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = aioredis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    transport = MockTransport(responses=[json_response({})])
    limiter = RateLimiter(store=RedisWindowStore(dead))
    async with AmoClient(
        subdomain="example",
        access_token="tok",
        transport=transport,
        retry=NO_RETRY,
        rate_limiter=limiter,
    ) as amo:
        with pytest.raises(RateLimitStoreError, match="not sent") as caught:
            await amo.request("GET", "/api/v4/leads/pipelines")
    assert not caught.value.may_have_been_processed
    assert transport.requests == []
    await dead.aclose()


async def test_the_token_store_saves_with_compare_and_set(redis: aioredis.Redis) -> None:
    key = f"{prefix()}:{{example.amocrm.ru}}:tokens"
    a, b = RedisTokenStore(redis, key), RedisTokenStore(redis, key)
    await a.save(TOKENS)  # nothing loaded yet: a code exchange writes
    assert await b.load() == TOKENS
    assert await a.load() == TOKENS
    await b.save(NEWER)
    with pytest.raises(TokenStoreError, match="another process"):
        await a.save(TokenSet("x-1", "y-1", expires_at=1.0))
    assert await a.load() == NEWER
    assert "access-ccc" not in repr(a) and "refresh-ddd" not in repr(a)


async def test_the_refresh_lock_outlives_the_token_request(redis: aioredis.Redis) -> None:
    key = f"{prefix()}:tokens"
    a = RedisTokenStore(redis, key)
    b = RedisTokenStore(redis, key, lock_timeout=0.3)
    async with a.lock():
        assert await redis.pttl(a.lock_key) > 60_000  # the default request timeout is 60 s
        with pytest.raises(TokenStoreError, match="waited"):
            async with b.lock():
                pass
    async with b.lock():
        pass


async def test_a_broken_token_store_says_so(redis: aioredis.Redis) -> None:
    key = f"{prefix()}:tokens"
    await redis.set(key, b"not json")
    with pytest.raises(TokenStoreError):
        await RedisTokenStore(redis, key).load()


async def test_two_providers_on_one_redis_key_refresh_once(redis: aioredis.Redis) -> None:
    """Two OAuth2 providers, as two processes would have, find the stored access token
    expired at once: one refreshes under the lock, the other reloads the new pair."""
    from amo_pipelines import OAuth2
    from amo_pipelines.emulator import Emulator, EmulatorConfig
    from amo_pipelines.http.retry import RetryPolicy

    key = f"{prefix()}:{{emulated}}:tokens"
    async with Emulator(EmulatorConfig(token_rps=None, account_rps=None)) as emu:
        grant = emu.issue_tokens()
        await RedisTokenStore(redis, key).save(
            TokenSet(grant["access_token"], grant["refresh_token"], 0.0)
        )
        cfg = emu.config
        clients = [
            AmoClient(
                base_url=emu.url,
                auth=OAuth2(
                    cfg.oauth_client_id,
                    cfg.oauth_client_secret,
                    cfg.oauth_redirect_uri,
                    store=RedisTokenStore(redis, key),
                    reload_grace=0,
                ),
                rate_limiter=RateLimiter(
                    integration_limit=None, account_limit=None, max_in_flight=None
                ),
                retry=RetryPolicy(backoff=0.01, max_backoff=0.05),
            )
            for _ in range(2)
        ]
        try:
            await asyncio.gather(*(amo.pipelines.list() for amo in clients for _ in range(3)))
        finally:
            for amo in clients:
                await amo.aclose()
        assert emu.stats.token_requests == 1  # one refresh between the two
        api = [e for e in emu.request_log if e.path.startswith("/api/")]
        assert len(api) == 6 and all(e.status == 200 for e in api)
    stored = await RedisTokenStore(redis, key).load()
    assert stored is not None and stored.access_token != grant["access_token"]
