"""The machine-wide store's binary file: what it holds, that it stays small, and that a
file it did not write (an old JSON one, another boot's, a torn one) never counts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
import tempfile
from array import array
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from amo_pipelines import FileWindowStore
from amo_pipelines.budget._filestate import SUFFIX, Log, State, load
from amo_pipelines.budget.windows import Denied, Granted, PenaltyRule, Window

ACCOUNT = "acme.amocrm.ru"
RULE = PenaltyRule(factor=0.5, step=0.1, interval=1.0, minimum=1 / 64)


def file_of(directory: Path, account: str = ACCOUNT) -> Path:
    name = hashlib.sha256(account.encode()).hexdigest()[:32]
    return directory / f"{name}{SUFFIX}"


def state_of(store: FileWindowStore, account: str = ACCOUNT) -> State:
    return load(file_of(store.directory, account).read_bytes(), store._boot)


def held(store: FileWindowStore, window: Window) -> int:
    if not file_of(store.directory).exists():  # nothing granted yet
        return 0
    log = state_of(store).log(window.key.encode())
    return 0 if log is None else len(log.untils)


async def test_an_answer_is_written_once_the_loop_turns(tmp_path: Path) -> None:
    a, b = FileWindowStore(tmp_path, lease=30.0), FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 2, 60.0)
    grant = await a.acquire_account(ACCOUNT, [window], RULE)
    assert isinstance(grant, Granted)
    until = state_of(a).log(window.key.encode())
    assert until is not None and until.untils[0] > 60.0 + 29.0 + grant.at  # pending
    await a.complete(grant, 0.0)
    await asyncio.sleep(0)  # the loop turns: the answer is in the file
    log = state_of(b).log(window.key.encode())
    assert log is not None and len(log.untils) == 1
    assert log.untils[0] <= grant.at + 60.0 + 1.0  # a span from the answer, not a lease
    assert isinstance(await b.acquire_account(ACCOUNT, [window], RULE), Granted)
    assert isinstance(await b.acquire_account(ACCOUNT, [window], RULE), Denied)
    a.close()
    b.close()


async def test_a_grant_right_after_an_answer_carries_it(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 5, 60.0)
    first = await store.acquire_account(ACCOUNT, [window], RULE)
    assert isinstance(first, Granted)
    await store.complete(first, 0.0)
    second = await store.acquire_account(ACCOUNT, [window], RULE)  # no loop turn between
    assert isinstance(second, Granted)
    log = state_of(store).log(window.key.encode())
    assert log is not None and len(log.untils) == 2
    assert log.untils[0] <= first.at + 61.0 < log.untils[1]  # answered, then pending
    await store.refund(second)
    store.close()


def test_close_writes_the_answers_left(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 5, 60.0)

    async def answered_then_loop_gone() -> Granted:
        grant = await store.acquire_account(ACCOUNT, [window], RULE)
        assert isinstance(grant, Granted)
        await store.complete(grant, 0.0)
        return grant

    loop = asyncio.new_event_loop()
    grant = loop.run_until_complete(answered_then_loop_gone())
    loop.close()  # whatever the loop had still to run, it will not now
    store.close()
    log = state_of(store).log(window.key.encode())
    assert log is not None and log.untils[0] <= grant.at + 61.0


def test_an_answer_left_by_a_closed_loop_is_written_by_the_next_loop(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 5, 60.0)
    loop = asyncio.new_event_loop()

    async def grant_and_answer() -> Granted:
        grant = await store.acquire_account(ACCOUNT, [window], RULE)
        assert isinstance(grant, Granted)
        await store.complete(grant, 0.0)
        return grant

    first = loop.run_until_complete(grant_and_answer())
    loop.close()
    second = asyncio.run(grant_and_answer())
    log = state_of(store).log(window.key.encode())
    assert log is not None and len(log.untils) == 2
    assert max(log.untils) <= second.at + 61.0 and min(log.untils) >= first.at + 60.0
    store.close()


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from("aacrt"), st.integers(0, 1)), max_size=60
    )
)
def test_the_file_holds_exactly_the_pending_and_answered_places(
    steps: list[tuple[int, str, int]],
) -> None:
    """Three stores ("processes"), two integrations on one account: grants, answers,
    refunds and loop turns in any order. After each step no window holds more places than
    its limit, and once the loop turned, each holds exactly its pending and answered ones."""
    directory = Path(tempfile.mkdtemp()) / "budget"

    async def run() -> None:
        stores = [FileWindowStore(directory, lease=30.0) for _ in range(3)]
        account = Window(f"a|{ACCOUNT}", 4, 60.0)
        tokens = [Window(f"i|{ACCOUNT}|fp{i}", 3, 60.0) for i in range(2)]
        pending: list[tuple[int, Granted]] = []
        answered: list[Granted] = []
        for who, op, token in steps:
            store = stores[who]
            if op == "a":
                windows = [tokens[token], account]
                admission = await store.acquire_account(ACCOUNT, windows, RULE)
                if isinstance(admission, Granted):
                    pending.append((who, admission))
            elif op == "t":
                await asyncio.sleep(0)
            elif pending:
                owner, grant = pending.pop(0)
                if op == "c":
                    await stores[owner].complete(grant, 0.0)
                    answered.append(grant)
                else:
                    await stores[owner].refund(grant)
            holding = [g for _, g in pending] + answered
            for window in (account, *tokens):
                mine = sum(1 for g in holding if window in g.windows)
                assert mine <= window.limit
            if op == "t":
                for window in (account, *tokens):
                    mine = sum(1 for g in holding if window in g.windows)
                    assert held(stores[0], window) == mine
        for store in stores:
            store.close()

    try:
        asyncio.run(run())
    finally:
        shutil.rmtree(directory.parent)


async def test_the_file_stays_as_small_as_the_limits_under_heavy_use(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    token, account = Window(f"i|{ACCOUNT}|fp", 7, 0.0001), Window(f"a|{ACCOUNT}", 50, 0.0001)
    sizes = []
    for _ in range(3000):
        admission = await store.acquire_account(ACCOUNT, [token, account], RULE)
        if isinstance(admission, Granted):
            await store.complete(admission, 0.0)
        else:
            await asyncio.sleep(admission.retry_after)
        sizes.append(file_of(tmp_path).stat().st_size)
    assert held(store, token) <= 7 and held(store, account) <= 7
    # Header, two keys and at most 7 places of 16 bytes in each window, plus the slack a
    # shorter rewrite may leave behind before it is truncated.
    assert max(sizes) < 200 + 2 * 7 * 16 + 4096
    store.close()


async def test_places_of_many_answered_grants_leave_as_they_expire(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 10**9, 0.0001)
    for _ in range(2000):
        grant = await store.acquire_account(ACCOUNT, [window], RULE)
        assert isinstance(grant, Granted)
        await store.complete(grant, 0.0)
    await asyncio.sleep(0.01)
    grant = await store.acquire_account(ACCOUNT, [window], RULE)
    assert isinstance(grant, Granted)
    assert held(store, window) == 1  # the 2000 expired ones are gone
    await store.refund(grant)
    store.close()


async def test_an_old_json_file_is_left_alone_and_not_counted(tmp_path: Path) -> None:
    """0.x kept JSON in ``<hash>.json``: a process of that version still uses it, so it is
    neither read (its layout is not this one's) nor overwritten."""
    old = file_of(tmp_path).with_suffix(".json")
    content = json.dumps({"b": "x", "w": {f"i|{ACCOUNT}|fp": [["r", 1e300]]}})
    old.write_text(content)
    store = FileWindowStore(tmp_path, lease=1.0)
    window = Window(f"i|{ACCOUNT}|fp", 1, 1.0)
    assert isinstance(await store.acquire_account(ACCOUNT, [window], RULE), Granted)
    assert old.read_text() == content
    store.close()


async def test_a_file_of_an_earlier_boot_is_discarded(tmp_path: Path) -> None:
    window = Window(f"i|{ACCOUNT}|fp", 1, 60.0)
    before = FileWindowStore(tmp_path, lease=30.0)
    before._boot = bytes(16)  # as if written before the machine last booted
    assert isinstance(await before.acquire_account(ACCOUNT, [window], RULE), Granted)
    before._keeper.pending.clear()
    after = FileWindowStore(tmp_path, lease=30.0)
    assert isinstance(await after.acquire_account(ACCOUNT, [window], RULE), Granted)
    before.close()
    after.close()


async def test_a_peer_s_write_is_read_not_the_copy_in_memory(tmp_path: Path) -> None:
    """Each store keeps the state it last wrote decoded; a peer's write changes the stamp,
    so the next call decodes the file again."""
    a, b = FileWindowStore(tmp_path, lease=30.0), FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 2, 60.0)
    first = await a.acquire_account(ACCOUNT, [window], RULE)
    assert isinstance(await b.acquire_account(ACCOUNT, [window], RULE), Granted)
    assert isinstance(await a.acquire_account(ACCOUNT, [window], RULE), Denied)
    assert isinstance(first, Granted)
    await a.refund(first)
    assert isinstance(await b.acquire_account(ACCOUNT, [window], RULE), Granted)
    a.close()
    b.close()


async def test_no_task_is_left_once_every_grant_is_answered(tmp_path: Path) -> None:
    store = FileWindowStore(tmp_path, lease=30.0)
    window = Window(f"i|{ACCOUNT}|fp", 5, 1.0)
    grants = [await store.acquire_account(ACCOUNT, [window], RULE) for _ in range(3)]
    for grant in grants:
        assert isinstance(grant, Granted)
        await store.complete(grant, 0.0)
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}  # the heartbeat is a timer
    store.close()


def test_a_receipt_is_found_only_whole_and_a_missing_one_is_none() -> None:
    ids = array("Q", [0x1100000000000000, 0x22, 5])
    log = Log(array("d", [1.0, 2.0, 3.0]), ids)
    across = int.from_bytes(ids.tobytes()[4:12], sys.byteorder)  # the bytes of two entries
    assert log.pop(across) is None
    assert log.pop(12345) is None
    assert log.pop(5) == 3.0
    assert list(log.ids) == [0x1100000000000000, 0x22] and list(log.untils) == [1.0, 2.0]
