"""Fixtures of the emulator tier: raw HTTP (``api``, ``session``) and reply checks; the
emulators themselves (``emu``, ``make_emu``, ``emu_clock``) are in tests/conftest.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from attrs import frozen

from amo_pipelines.emulator import Emulator


@frozen
class Reply:
    status: int
    content_type: str
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class Api:
    """Raw HTTP against one emulator: ``await api.get(path)``, ``api.post(path, json=...)``."""

    def __init__(self, session: aiohttp.ClientSession, emu: Emulator) -> None:
        self.session = session
        self.emu = emu

    def auth(self, token: str | None) -> dict[str, str]:
        if token is None:
            return {}
        value = {"admin": self.emu.admin_token, "user": self.emu.user_token}.get(token, token)
        return {"Authorization": f"Bearer {value}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = "admin",
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        all_headers = {**self.auth(token), **(headers or {})}
        async with self.session.request(
            method, self.emu.url + path, headers=all_headers, **kwargs
        ) as resp:
            return Reply(resp.status, resp.content_type, await resp.read())

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("DELETE", path, **kwargs)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def api(session: aiohttp.ClientSession, emu: Emulator) -> Api:
    return Api(session, emu)


@pytest.fixture
def make_api(session: aiohttp.ClientSession) -> Callable[[Emulator], Api]:
    return lambda e: Api(session, e)


def problem_keys(body: dict[str, Any]) -> None:
    """Assert ``body`` is a problem+json document."""
    assert {"title", "type", "status", "detail"} <= body.keys()
    assert body["type"] == f"https://httpstatus.es/{body['status']}"


@pytest.fixture
def check_problem() -> Callable[[Reply, int, str | None], dict[str, Any]]:
    """``check_problem(reply, status, detail)``: assert a problem+json reply, return its body."""

    def check(reply: Reply, status: int, detail: str | None = None) -> dict[str, Any]:
        assert reply.status == status, reply.body
        assert reply.content_type == "application/problem+json"
        body = reply.json
        assert isinstance(body, dict)
        problem_keys(body)
        assert body["status"] == status
        if detail is not None:
            assert body["detail"] == detail
        return body

    return check


@pytest.fixture
def check_validation() -> Callable[[Reply], dict[str, list[tuple[str, str]]]]:
    """Assert a 400 validation-errors reply; return {request_id: [(code, path), ...]}."""

    def check(reply: Reply) -> dict[str, list[tuple[str, str]]]:
        assert reply.status == 400, reply.body
        assert reply.content_type == "application/problem+json"
        body = reply.json
        assert body["title"] == "Bad Request"
        assert body["type"] == "https://httpstatus.es/400"
        assert body["status"] == 400
        assert body["detail"] == "Request validation failed"
        out: dict[str, list[tuple[str, str]]] = {}
        for item in body["validation-errors"]:
            assert set(item) == {"request_id", "errors"}
            assert isinstance(item["request_id"], str)
            for err in item["errors"]:
                assert set(err) == {"code", "path", "detail"}
                assert all(isinstance(v, str) for v in err.values())
            out[item["request_id"]] = [(e["code"], e["path"]) for e in item["errors"]]
        return out

    return check
