"""Every server store keeps the same promises; SQLite also across reopen."""

import json

import pytest

from shotx.server import MemoryStore, SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path):
    made = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.sqlite3")
    await made.open()
    yield made
    await made.close()


async def test_append_assigns_offsets_per_room_and_reads_in_order(store):
    for n in range(3):
        assert (await store.append("a", "t", {"n": n}, f"a{n}", 100.0 + n, False, 10)).offset == n + 1
    assert (await store.append("b", "t", "x", "b0", 1.0, True, 10)).offset == 1
    entries = await store.read("a", 0, 100)
    assert [(e.offset, e.id, e.data) for e in entries] == [(1, "a0", {"n": 0}), (2, "a1", {"n": 1}), (3, "a2", {"n": 2})]
    assert [e.offset for e in await store.read("a", 1, 1)] == [2]
    assert await store.read("a", 3, 10) == [] and await store.read("none", 0, 10) == []


async def test_bounds_track_head_floor_and_delivered(store):
    assert (await store.bounds("r")).head == 0
    await store.append("r", "t", 1, "1", 1.0, False, 10)
    await store.append("r", "t", 2, "2", 1.0, True, 10)
    await store.append("r", "t", 3, "3", 1.0, False, 10)
    bounds = await store.bounds("r")
    assert (bounds.head, bounds.floor, bounds.delivered) == (3, 0, 2)
    await store.mark_delivered("r", 3)
    await store.mark_delivered("r", 1)  # never backwards
    assert (await store.bounds("r")).delivered == 3


async def test_retention_by_count_keeps_the_newest(store):
    for n in range(1, 8):
        await store.append("r", "t", n, str(n), 1.0, False, 3)
    assert [e.offset for e in await store.read("r", 0, 100)] == [5, 6, 7]
    assert (await store.bounds("r")).floor == 4


async def test_retention_by_age_moves_the_floor(store):
    for n in range(1, 6):
        await store.append("r", "t", n, str(n), float(n), False, 100)
    assert await store.drop_older_than(3.5) == 3
    assert [e.offset for e in await store.read("r", 0, 100)] == [4, 5]
    bounds = await store.bounds("r")
    assert (bounds.head, bounds.floor) == (5, 3)
    assert (await store.append("r", "t", 6, "6", 9.0, False, 100)).offset == 6


async def test_replies_are_remembered_per_principal_and_forgotten_by_age(store):
    reply = {"meta": {"success": True}, "data": {"x": [1, 2]}}
    await store.remember("alice", "m1", json.dumps(reply), 10.0)
    assert await store.recall("alice", "m1") == reply
    assert await store.recall("bob", "m1") is None
    assert await store.forget_replies_before(11.0) == 1
    assert await store.recall("alice", "m1") is None


async def test_stored_data_is_a_copy(store):
    data = {"list": [1]}
    await store.append("r", "t", data, "1", 1.0, False, 10)
    data["list"].append(2)
    assert (await store.read("r", 0, 10))[0].data == {"list": [1]}


async def test_sqlite_survives_reopen(tmp_path):
    path = tmp_path / "again.sqlite3"
    first = SqliteStore(path)
    await first.open()
    for n in range(1, 4):
        await first.append("r", "t", {"n": n}, str(n), 1.0, n == 1, 10)
    await first.remember("p", "id", json.dumps({"meta": {"success": True}, "data": 1}), 5.0)
    await first.close()
    second = SqliteStore(path)
    await second.open()
    try:
        bounds = await second.bounds("r")
        assert (bounds.head, bounds.delivered) == (3, 1)
        assert [e.data["n"] for e in await second.read("r", 0, 10)] == [1, 2, 3]
        assert (await second.append("r", "t", {"n": 4}, "4", 1.0, False, 10)).offset == 4
        assert await second.recall("p", "id") == {"meta": {"success": True}, "data": 1}
    finally:
        await second.close()
