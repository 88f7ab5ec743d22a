"""A client belongs to the event loop that first used it: the default aiohttp transport
used from a second ``asyncio.run()`` in a fresh interpreter (the in-process rules:
unit/test_event_loop_binding.py)."""

from __future__ import annotations

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
from support.constants import NO_PIPELINES

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-SECRET-loops"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(NO_PIPELINES).encode()
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
