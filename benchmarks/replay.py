"""A static replay server: answers recorded bodies by path, at near-zero CPU.

The overhead benchmark's headline server. The emulator spends 120-250 us of CPU per call
(routing, state, rendering JSON), as much as a client, and on two cores that squeezes the
concurrent rows toward 1. This server does no work per request beyond parsing the request
head and writing bytes prepared at start-up: an ``asyncio.Protocol``, HTTP/1.1 keep-alive,
GET only, one answer per request path (with its query string; the path alone when the
query string is unknown), 404 for anything else.

    python -m benchmarks.replay RECORDING.json

RECORDING: ``{"/api/v4/leads/pipelines?with=x": {"status": 200, "content_type": "...",
"body": "<text>"}, ...}``. It prints ``listening on http://127.0.0.1:PORT`` and serves
until terminated. :func:`replay_process` runs it as a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from .common import ROOT, stop_process

_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_REASONS = {200: "OK", 204: "No Content", 404: "Not Found"}


def _answer(status: int, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Answer')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Replay(asyncio.Protocol):
    def __init__(self, answers: Mapping[bytes, bytes]) -> None:
        self._answers = answers
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head, buffer = buffer[:end], buffer[end + 4 :]  # GETs carry no body
            target = head[: head.find(b"\r\n")].split(b" ", 2)[1]
            answer = self._answers.get(target)
            if answer is None:
                answer = self._answers.get(target.split(b"?", 1)[0], _NOT_FOUND)
            out.append(answer)
        self._buffer = buffer
        if out and self._transport is not None:
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])


def load(path: Path) -> dict[bytes, bytes]:
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return {
        target.encode("ascii"): _answer(
            entry["status"], entry["content_type"], entry["body"].encode("utf-8")
        )
        for target, entry in recorded.items()
    }


async def serve(path: Path, host: str = "127.0.0.1", port: int = 0) -> None:
    answers = load(path)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Replay(answers), host, port)
    bound = server.sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop


@contextlib.asynccontextmanager
async def replay_process(recorded: Mapping[str, tuple[int, str, bytes]]) -> AsyncIterator[str]:
    """This module in a child process serving ``recorded`` (target -> (status, content
    type, body)); yields its base URL."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recording.json"
        path.write_text(
            json.dumps(
                {
                    target: {"status": s, "content_type": t, "body": b.decode("utf-8")}
                    for target, (s, t, b) in recorded.items()
                }
            ),
            encoding="utf-8",
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.replay",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
        )
        try:
            assert proc.stdout is not None
            banner = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            found = re.search(r"listening on (\S+)", banner)
            if found is None:
                raise RuntimeError(f"unexpected replay server output: {banner!r}")
            yield found.group(1)
        finally:
            await stop_process(proc)


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
