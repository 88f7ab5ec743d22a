"""Fixtures of the SDK tier: a client on the root conftest's ``emu``.

``amo`` (tests/conftest.py) is a client on a MockTransport; ``amo_emu`` here is one on a
real in-process emulator, over loopback HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.emulated import fast_client

from amo_pipelines import AmoClient
from amo_pipelines.emulator import Emulator


@pytest.fixture
async def amo_emu(emu: Emulator) -> AsyncIterator[AmoClient]:
    """:func:`support.emulated.fast_client` on ``emu``, with its admin token."""
    async with fast_client(emu) as client:
        yield client
