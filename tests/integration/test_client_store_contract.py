"""Every CPython client store keeps the same promises (IndexedDB's twin runs in Chromium)."""

import pytest

from shotx.client import MemoryStore
from shotx.client.core import Outbox
from shotx.client.sqlite_store import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path):
    made = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "c.sqlite3")
    yield made
    await made.close()


async def test_outbox_records_round_trip_in_send_order(store):
    box = Outbox()
    records = [box.add("message", {"type": "t"}, {"n": n}) for n in range(4)]
    for record in reversed(records):
        await store.add_outbox(record)
    await store.remove_outbox([records[1].id])
    await store.remove_outbox([])
    loaded = (await store.load()).outbox
    assert [r.data["n"] for r in loaded] == [0, 2, 3]
    assert loaded[0].to_dict() == records[0].to_dict()


async def test_rooms_offsets_and_seen_ids(store):
    await store.save_room("a", None)
    await store.save_room("b", 4)
    await store.mark_handled("a", 7, "m7")
    await store.mark_handled("gone", 1, "m1")  # not joined: only the id counts
    await store.remove_room("b")
    state = await store.load()
    assert state.rooms == {"a": 7} and state.seen == ["m7", "m1"]


async def test_seen_ids_stay_bounded(store):
    store.seen_limit = 5
    await store.save_room("r", None)
    for n in range(12):
        await store.mark_handled("r", n, f"id{n}")
    state = await store.load()
    assert state.seen == [f"id{n}" for n in range(7, 12)] and state.rooms == {"r": 11}
