"""Defect 2: text a store cannot keep (a lone UTF-16 surrogate) must not stall a room.

JSON keeps such a character as it is (``ensure_ascii=False``) and sqlite3 fails on it
only when the commit binds it. Refused at the edge with a clear ack, and a failure that
gets past the edge anyway fails its own writer, never the room.
"""

import asyncio
import json

import pytest

from shotx.client import protocol
from shotx.server import SqliteStore

BAD = "\ud800"


def relaying(sx):
    async def relay(data, socket):
        return await sx.to("r").send("relayed", data)
    sx.on_message("relay", relay)


async def test_a_lone_surrogate_is_refused_and_the_room_goes_on(start_server, raw_client, tmp_path):
    server = await start_server(relaying, store=str(tmp_path / "s.sqlite3"))
    sio = await raw_client(server.url)

    async def call(type_, data, message_id=None):
        message = {"meta": {"type": type_, "id": message_id or protocol.uuid7()}, "data": data}
        return (await sio.call("message", message, timeout=1))["meta"]  # hung before the fix

    for payload in (BAD, {"text": f"x{BAD}"}, [1, {"deep": [BAD]}]):
        refused = await call("relay", payload)
        assert (refused["success"], refused["code"]) == (False, 2004) and "surrogate" in refused["error"]
    refused = await call("relay", 1, message_id=BAD)  # would become a reply-memory key
    assert (refused["success"], refused["code"]) == (False, 2001) and "surrogate" in refused["error"]
    refused = await call("sx_join", {"room": f"r{BAD}"})
    assert (refused["success"], refused["code"]) == (False, 2004) and "surrogate" in refused["error"]
    assert (await call("relay", {"n": 1}))["success"] is True  # the same room, within a second
    joined = await sio.call("message", {"meta": {"type": "sx_join", "id": protocol.uuid7()},
                                        "data": {"room": "r", "since": 0}}, timeout=1)
    assert joined["meta"]["success"] is True and joined["data"]["head"] == 1


@pytest.fixture(params=["sqlite", "redis"])
async def encoding_store(request, tmp_path):
    """The stores that encode text (memory keeps Python strings as they are)."""
    if request.param == "redis":
        from shotx.server.redis_store import RedisStore

        made = RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    else:
        made = SqliteStore(tmp_path / "s.sqlite3")
    await made.open()
    yield made
    await made.close()


async def written(store, room, data_json, message_id):
    """Append then await durability, as the server does; the error of either step."""
    entry = await store.append(room, "t", data_json, message_id, 1.0, False, 10)
    await asyncio.wait_for(store.flushed(), 5)  # did not return before the fix
    return entry


async def test_a_write_past_the_edge_fails_its_writer_and_the_next_one_is_durable(encoding_store):
    store = encoding_store
    await written(store, "r", json.dumps({"n": 1}), "1")
    with pytest.raises(UnicodeEncodeError):
        await written(store, "r", f'"{BAD}"', "bad")  # as if encode_json had let it through
    with pytest.raises(UnicodeEncodeError):
        await written(store, "r", "2", BAD)
    entry = await written(store, "r", json.dumps({"n": 2}), "2")
    assert [e.id for e in await store.read("r", 0, 10)] == ["1", "2"]
    assert (await store.bounds("r")).head == entry.offset
    if isinstance(store, SqliteStore):  # and it is in the file
        await store.close()
        await store.open()
        assert [(e.offset, e.id) for e in await store.read("r", 0, 10)] == [(1, "1"), (entry.offset, "2")]
