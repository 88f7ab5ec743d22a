"""A client belongs to the event loop that first used it: used from another loop (a second
``asyncio.run()``) it raises WrongEventLoopError and sends nothing, instead of failing deep
inside aiohttp with ``RuntimeError: Event loop is closed``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from amo_pipelines import AmoClient, AmoError
from amo_pipelines.errors import WrongEventLoopError
from amo_pipelines.testing import MockTransport, json_response

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = "/api/v4/leads/pipelines"
LIST = {"_total_items": 0, "_embedded": {"pipelines": []}}
TOKEN = "tok-SECRET-loops"


def test_a_client_used_from_a_second_asyncio_run_raises_a_clear_error() -> None:
    transport = MockTransport(lambda request: json_response(LIST))
    amo = AmoClient(subdomain="example", access_token=TOKEN, transport=transport)

    async def list_pipelines() -> int:
        return (await amo.request("GET", PIPELINES)).status

    assert asyncio.run(list_pipelines()) == 200
    with pytest.raises(WrongEventLoopError, match="event loop that first used it") as caught:
        asyncio.run(list_pipelines())
    assert isinstance(caught.value, AmoError) and isinstance(caught.value, RuntimeError)
    assert "Nothing was sent" in str(caught.value)
    assert len(transport.requests) == 1
    assert not amo.closed


def test_a_client_made_outside_a_loop_binds_to_the_first_loop_that_uses_it() -> None:
    transport = MockTransport(lambda request: json_response(LIST))
    amo = AmoClient(subdomain="example", access_token=TOKEN, transport=transport)

    async def twice() -> None:
        await amo.request("GET", PIPELINES)
        await asyncio.gather(amo.request("GET", PIPELINES), amo.request("GET", PIPELINES))
        await amo.aclose()

    asyncio.run(twice())
    assert len(transport.requests) == 3 and amo.closed


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(LIST).encode()
        self.send_response(200)
        self.send_header("content-type", "application/hal+json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# In a process of its own: the first loop ends without closing the client (the mistake this
# is about), and what aiohttp then leaves behind must not disturb the test run.
TWO_RUNS = textwrap.dedent(
    """
    import asyncio, sys
    from amo_pipelines import AmoClient

    amo = AmoClient(base_url=sys.argv[1], access_token="tok-SECRET-loops")

    async def list_pipelines() -> int:
        return (await amo.request("GET", "/api/v4/leads/pipelines")).status

    print(asyncio.run(list_pipelines()), flush=True)
    try:
        asyncio.run(list_pipelines())
    except Exception as e:
        print(type(e).__name__, flush=True)
        print(e, flush=True)
    """
)


def test_the_default_aiohttp_transport_from_a_second_loop(server_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", TWO_RUNS, server_url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines[:2] == ["200", "WrongEventLoopError"], result.stderr[-2000:]
    assert "Nothing was sent" in lines[2]
