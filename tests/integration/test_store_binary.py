"""Bytes in room messages and replies, in every server store (the store contract's fixtures).

A room message's bytes are kept as binary beside its JSON text with
placeholders (``shotx.client.binary``), and every read and replay gives them
back byte for byte; so does a remembered reply's. SQLite and Redis also
across reopening the same storage, and Redis through its live channel.
"""

import asyncio
import os
import sqlite3

from shotx.client import binary
from shotx.server import SqliteStore
from shotx.server.store import BinaryReply

from test_store_contract import opened, reopened, storage, store  # noqa: F401 (fixtures)

MIB = os.urandom(1024 * 1024)
EVERY_BYTE = bytes(range(256)) * 4  # NUL, invalid UTF-8, newlines: nothing a text field could keep


async def test_a_room_message_with_bytes_is_read_back_byte_for_byte(store):
    text, attachments = binary.encode({"name": "f.bin", "file": MIB, "parts": [EVERY_BYTE, b""]})
    entry = await store.append("files", "upload", text, "m1", 1.0, False, 10, attachments=attachments)
    await store.flushed(entry)
    await store.append("files", "note", '{"plain":true}', "m2", 2.0, False, 10)
    assert entry.attachments == (MIB, EVERY_BYTE, b"")
    first, second = await store.read("files", 0, 10)
    assert first.data_json == text and first.attachments == (MIB, EVERY_BYTE, b"")
    assert first.data == {"name": "f.bin", "file": MIB, "parts": [EVERY_BYTE, b""]}
    assert (second.data, second.attachments) == ({"plain": True}, ())


async def test_a_reply_with_bytes_is_recalled_byte_for_byte(store):
    reply = BinaryReply('{"meta":{"success":true},"data":{"_placeholder":true,"num":0}}', (EVERY_BYTE,))
    await store.remember("p", "m1", reply, 1.0)
    await store.remember("p", "m2", '{"data":1}', 1.0)
    assert await store.recall("p", "m1") == reply  # before the write too
    await store.flushed()
    assert await store.recall("p", "m1") == reply
    assert await store.recall("p", "m2") == '{"data":1}'


async def test_bytes_survive_reopening_the_same_storage(storage):  # noqa: F811
    first = await opened(storage("bin"))
    try:
        text, attachments = binary.encode([EVERY_BYTE])
        await first.append("r", "t", text, "1", 1.0, False, 10, attachments=attachments)
        await first.remember("p", "m", BinaryReply("[]", (b"\x00\xff",)), 1.0)
        await first.flushed()
    finally:
        await first.close()
    again = await opened(storage("bin"))
    try:
        if type(again).__name__ != "MemoryStore":
            assert [e.data for e in await again.read("r", 0, 10)] == [[EVERY_BYTE]]
            assert await again.recall("p", "m") == BinaryReply("[]", (b"\x00\xff",))
    finally:
        await again.close()


async def test_redis_live_entries_carry_the_bytes(redis_url, redis_prefix):
    from shotx.server.redis_store import RedisStore

    writer, reader = RedisStore(redis_url, prefix=redis_prefix), RedisStore(redis_url, prefix=redis_prefix)
    await writer.open()
    await reader.open()
    try:
        live = reader.live_entries()
        receiving = asyncio.ensure_future(live.__anext__())
        await writer.append("r", "t", '{"f":{"_placeholder":true,"num":0}}', "1", 1.0, True, 10, attachments=(MIB,))
        entry = await asyncio.wait_for(receiving, 10)
        assert (entry.offset, entry.attachments, entry.data) == (1, (MIB,), {"f": MIB})
    finally:
        await live.aclose()
        await writer.close()
        await reader.close()


async def test_sqlite_upgrades_a_version_3_file_to_keep_bytes(tmp_path):
    path = tmp_path / "v3.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.append("r", "t", '{"n":1}', "a", 1.0, False, 10)
    await store.remember("p", "m", '"old"', 1.0)
    await store.close()
    db = sqlite3.connect(path)  # back to version 3: no attachment columns
    db.executescript("ALTER TABLE room_log DROP COLUMN attachments; ALTER TABLE replies DROP COLUMN attachments;"
                     "PRAGMA user_version = 3;")
    db.close()
    again = await reopened(path)
    try:
        assert [e.data for e in await again.read("r", 0, 10)] == [{"n": 1}]
        assert await again.recall("p", "m") == '"old"'
        await again.append("r", "t", '{"_placeholder":true,"num":0}', "b", 1.0, False, 10, attachments=(b"\x01",))
        await again.flushed()
        assert [e.data for e in await again.read("r", 1, 10)] == [b"\x01"]
    finally:
        await again.close()
