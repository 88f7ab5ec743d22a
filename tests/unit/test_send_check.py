"""http.chain.send_check: a caller's check right before the wire, for its own requests only."""

from __future__ import annotations

import asyncio

import pytest
from support.constants import NO_PIPELINES, PIPELINES

from amo_pipelines import AmoClient, AmoError, MockTransport, Request
from amo_pipelines.http.chain import send_check
from amo_pipelines.testing import json_response


class Refused(AmoError):
    pass


def refuse_writes(request: Request) -> None:
    if request.method != "GET":
        raise Refused(f"{request.method} refused")


async def test_the_check_refuses_before_the_wire_in_its_context_only(
    transport: MockTransport, amo: AmoClient
) -> None:
    transport.add(*[json_response(NO_PIPELINES)] * 3)

    async def guarded() -> None:
        token = send_check.set(refuse_writes)
        try:
            await amo.request("GET", PIPELINES)  # reads pass
            with pytest.raises(Refused):
                await amo.request("DELETE", f"{PIPELINES}/5")
        finally:
            send_check.reset(token)

    await asyncio.gather(guarded(), amo.request("POST", PIPELINES, json=[{"name": "x"}]))
    await amo.request("GET", PIPELINES)
    assert sorted(r.method for r in transport.requests) == ["GET", "GET", "POST"]
