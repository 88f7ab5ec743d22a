"""Authentication, authorization, unknown ids and routes."""

from __future__ import annotations

from typing import Any

import pytest
from support.constants import FIRST, MAIN, PIPELINES

WRITES = [
    ("POST", PIPELINES, [{"name": "x", "sort": 1, "is_main": False, "is_unsorted_on": True}]),
    ("PATCH", f"{PIPELINES}/{MAIN}", {"name": "x"}),
    ("DELETE", f"{PIPELINES}/{MAIN}", None),
    ("POST", f"{PIPELINES}/{MAIN}/statuses", [{"name": "x", "sort": 1}]),
    ("PATCH", f"{PIPELINES}/{MAIN}/statuses/{FIRST}", {"name": "x"}),
    ("DELETE", f"{PIPELINES}/{MAIN}/statuses/{FIRST}", None),
]
READS = [
    PIPELINES,
    f"{PIPELINES}/{MAIN}",
    f"{PIPELINES}/{MAIN}/statuses",
    f"{PIPELINES}/{MAIN}/statuses/{FIRST}",
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (None, "Authorization header with a bearer token required"),
        ("nope", "Token is invalid"),
    ],
)
async def test_401(api: Any, check_problem: Any, path: str, token: Any, detail: str) -> None:
    body = check_problem(await api.get(path, token=token), 401, detail)
    assert body["title"] == "Unauthorized"
    assert set(body) == {"title", "type", "status", "detail"}


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer ", "token"])
async def test_malformed_authorization_header(api: Any, check_problem: Any, header: str) -> None:
    reply = await api.get(PIPELINES, token=None, headers={"Authorization": header})
    check_problem(reply, 401)


async def test_bearer_scheme_is_case_insensitive(api: Any, emu: Any) -> None:
    reply = await api.get(
        PIPELINES, token=None, headers={"Authorization": f"bearer {emu.admin_token}"}
    )
    assert reply.status == 200


@pytest.mark.parametrize("path", READS)
async def test_user_can_read(api: Any, path: str) -> None:
    assert (await api.get(path, token="user")).status == 200


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_user_can_not_write(
    api: Any, emu: Any, check_problem: Any, method: str, path: str, body: Any
) -> None:
    reply = await api.request(method, path, token="user", json=body)
    assert check_problem(reply, 403)["title"] == "Forbidden"
    assert emu.state.pipelines[MAIN].name == "Воронка"
    assert FIRST in emu.state.pipelines[MAIN].statuses
    assert len(emu.state.pipelines) == 1
    # 403 comes before 404 and before body checks
    reply = await api.request(method, path.replace(str(MAIN), "1"), token="user", data=b"")
    check_problem(reply, 403)


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_write_without_token_is_401(
    api: Any, check_problem: Any, method: str, path: str, body: Any
) -> None:
    check_problem(await api.request(method, path, token=None, json=body), 401)


async def test_token_table(
    api: Any, emu: Any, emu_clock: Any, make_emu: Any, make_api: Any
) -> None:
    timed = await make_emu(token_rps=None, clock=emu_clock)
    timed_api = make_api(timed)
    timed.state.add_token("short", admin=True, expires_at=emu_clock.now + 5)
    assert (await timed_api.get(PIPELINES, token="short")).status == 200
    assert (
        await timed_api.patch(f"{PIPELINES}/{MAIN}", token="short", json={"sort": 2})
    ).status == 200
    emu_clock.advance(5)
    reply = await timed_api.get(PIPELINES, token="short")
    assert reply.status == 401 and reply.json["detail"] == "Token has expired"
    timed.state.revoke_token(timed.admin_token)
    assert (await timed_api.get(PIPELINES)).status == 401
    assert set(emu.state.tokens) == {emu.admin_token, emu.user_token}
    assert emu.state.tokens[emu.admin_token].admin is True
    assert emu.state.tokens[emu.user_token].admin is False


@pytest.mark.parametrize("raw", ["abc", "-1", "1.5", "0x10", "%D9%A3", "99999999999999999999"])
async def test_bad_pipeline_ids_are_404(api: Any, check_problem: Any, raw: str) -> None:
    for path in (f"{PIPELINES}/{raw}", f"{PIPELINES}/{raw}/statuses"):
        check_problem(await api.get(path), 404, "Pipeline not found")
    check_problem(await api.patch(f"{PIPELINES}/{raw}", json={"name": "x"}), 404)
    check_problem(await api.get(f"{PIPELINES}/{MAIN}/statuses/{raw}"), 404, "Status not found")


async def test_unknown_status_and_pipeline(api: Any, check_problem: Any) -> None:
    check_problem(await api.get(f"{PIPELINES}/1"), 404, "Pipeline not found")
    check_problem(await api.get(f"{PIPELINES}/{MAIN}/statuses/1"), 404, "Status not found")
    check_problem(await api.delete(f"{PIPELINES}/{MAIN}/statuses/1"), 404, "Status not found")
    # a 404 comes before any body check
    check_problem(await api.patch(f"{PIPELINES}/1", data=b""), 404, "Pipeline not found")


async def test_unknown_routes_and_methods(api: Any, check_problem: Any) -> None:
    check_problem(await api.get("/api/v4/leads"), 404, "Not found")
    check_problem(await api.get(f"{PIPELINES}/"), 404, "Not found")
    check_problem(await api.request("PUT", f"{PIPELINES}/{MAIN}", json={}), 405)
    check_problem(await api.request("PATCH", PIPELINES, json={}), 405)
    head = await api.request("HEAD", PIPELINES)
    assert head.status == 405
    check_problem(await api.get("/nothing", token=None), 401)  # auth comes first
