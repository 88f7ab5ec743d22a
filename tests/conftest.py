"""Fixtures of every tier: the spec's JSON examples, clients that send each request once
on a MockTransport (``amo``), in-process emulators (``emu``, ``make_emu``, ``emu_clock``),
a redis-server; and the tier markers, given by folder (see README.md here)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from support import spec_examples
from support.emulated import ManualClock, unlimited_config

from amo_pipelines import NO_RETRY, AmoClient
from amo_pipelines.emulator import Emulator, EmulatorConfig
from amo_pipelines.testing import MockTransport

# Distinctive, so that a scan of messages and reprs for it cannot match by accident.
TOKEN = "tok-SECRET-5f3a9c1e-do-not-print"


@pytest.fixture(scope="session")
def examples() -> tuple[spec_examples.Example, ...]:
    """Every JSON example of the three API pages."""
    return spec_examples.all_examples()


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def make_client() -> Callable[..., AmoClient]:
    """``AmoClient(**kwargs)`` with the test token, sending every request exactly once.

    These tests are about one request and what its answer becomes; retries are not.
    """

    def make(**kwargs: Any) -> AmoClient:
        kwargs.setdefault("access_token", TOKEN)
        kwargs.setdefault("retry", NO_RETRY)
        return AmoClient(**kwargs)

    return make


@pytest.fixture
def transport() -> MockTransport:
    return MockTransport()


@pytest.fixture
async def amo(
    transport: MockTransport, make_client: Callable[..., AmoClient]
) -> AsyncIterator[AmoClient]:
    async with make_client(subdomain="example", transport=transport) as client:
        yield client


MakeEmu = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def make_emu() -> AsyncIterator[MakeEmu]:
    """``await make_emu(**config_fields)``: a started emulator, stopped after the test."""
    async with AsyncExitStack() as stack:

        async def make(**fields: Any) -> Emulator:
            return await stack.enter_async_context(Emulator(EmulatorConfig(**fields)))

        yield make


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator with the seeded account and its rate limits off."""
    async with Emulator(unlimited_config()) as emulator:
        yield emulator


@pytest.fixture
def emu_clock() -> ManualClock:
    """A clock for an emulator (``make_emu(clock=emu_clock)``), moved by hand."""
    return ManualClock()


@pytest.fixture(autouse=True)
def _private_budget(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own machine-wide window store folder (the default store of a
    system-clock limiter), inherited by the subprocesses it starts: a 429 pause or a block
    left by one test (the mock accounts share names) must not reach the next one, nor a
    test run reach another one running on the same machine."""
    monkeypatch.setenv("AMO_PIPELINES_STATE_DIR", str(tmp_path_factory.mktemp("budget")))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server of this test session, on a free port (no persistence).

    Missing redis-server skips the Redis tests on a developer's machine, but fails them in
    CI (``CI=true``): .ci/run installs it, and a Redis test must never vanish silently.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must run the Redis tests")
        pytest.skip(message)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


TIERS = ("unit", "sdk", "emulator", "processes")
TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier's folder (``-m unit`` ...); the processes tier is slow."""
    for item in items:
        path = item.path.resolve()
        tier = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if tier in TIERS:
            item.add_marker(tier)
            if tier == "processes":
                item.add_marker("slow")
