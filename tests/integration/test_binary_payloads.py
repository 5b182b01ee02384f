"""Bytes travel as Socket.IO binary both ways, in CPython: sends, replies, room messages,
replays, resends and the offline outbox; size limits count them."""

import asyncio
import hashlib
import os
import subprocess
import sys

import pytest

from shotx.client import PayloadTooLarge, SxClient, protocol

MIB = 1024 * 1024


def file_routes(handled):
    def setup(sx):
        def upload(data, socket):
            handled.append(data)
            return {"sha": hashlib.sha256(data["file"]).hexdigest(), "back": data["file"][::-1]}
        sx.on_message("upload", upload)
    return setup


async def test_a_mib_each_way_arrives_as_bytes(start_server, make_client):
    handled, blob = [], os.urandom(MIB)
    client = make_client((await start_server(file_routes(handled), store="memory")).url)
    await client.connect("valid")
    reply = await client.send("upload", {"name": "a.bin", "file": blob})
    assert type(handled[0]["file"]) is bytes and handled[0] == {"name": "a.bin", "file": blob}
    assert type(reply["back"]) is bytes and reply == {"sha": hashlib.sha256(blob).hexdigest(), "back": blob[::-1]}


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_room_message_with_bytes_reaches_a_live_member_and_a_later_joiner(
        kind, start_server, make_client, wait_until, tmp_path, request):
    store = tmp_path / "log.sqlite3" if kind == "sqlite" else None
    if kind == "redis":
        from shotx.server import RedisStore
        store = RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    server = await start_server(store=store)
    blob = os.urandom(MIB)
    live, later, got_live, got_later = make_client(server.url), make_client(server.url), [], []
    live.on_message("file", lambda data, meta: got_live.append((data, meta["offset"])))
    later.on_message("file", lambda data, meta: got_later.append((data, meta["offset"])))
    for client in (live, later):
        await client.connect("valid")
        await client.join("files")
    await later.disconnect()  # offline when the file is sent: it comes with the rejoin's replay
    sent = await server.sx.to("files").send("file", {"parts": [blob, b"\x00\n\xff"], "name": "f"})
    expected = ({"parts": [blob, b"\x00\n\xff"], "name": "f"}, sent["offset"])
    await wait_until(lambda: got_live)
    await later.connect("valid")
    await wait_until(lambda: got_later)
    assert got_live == [expected] and got_later == [expected]
    assert later.join_answers["files"]["replayed"] == 1


async def test_a_resend_gets_the_remembered_binary_reply(start_server, raw_client, tmp_path):
    handled = []
    server = await start_server(file_routes(handled), store=tmp_path / "s.sqlite3")
    sio = await raw_client(server.url)
    message = {"meta": {"type": "upload", "id": protocol.uuid7()}, "data": {"file": b"\x01\x02"}}
    first = await sio.call("message", message, timeout=5)
    server.sx.replies._recent.clear()  # the store's copy, not the in-memory one
    again = await sio.call("message", {**message, "meta": {**message["meta"], "resend": True}}, timeout=5)
    assert first == again == {"meta": {"success": True}, "data": {"sha": hashlib.sha256(b"\x01\x02").hexdigest(),
                                                                  "back": b"\x02\x01"}}
    assert len(handled) == 1


QUEUE_AND_EXIT = """
import asyncio, sys
from shotx.client import SxClient

async def main():
    client = SxClient(sys.argv[1], store=sys.argv[2])
    await client.queue("upload", {"name": "offline", "file": bytes.fromhex(sys.argv[3]) * 4096})
    await client.close()

asyncio.run(main())
"""


async def test_bytes_queued_offline_in_a_sqlite_store_flush_after_a_process_restart(
        start_server, tmp_path, wait_until):
    handled = []
    server = await start_server(file_routes(handled))
    path, pattern = tmp_path / "client.sqlite3", os.urandom(256)  # 1 MiB in all
    await asyncio.to_thread(subprocess.run, [sys.executable, "-c", QUEUE_AND_EXIT, "http://127.0.0.1:9", str(path),
                                             pattern.hex()], check=True, timeout=60)
    import sqlite3
    with sqlite3.connect(path) as db:  # kept as a BLOB beside placeholder text, not as text
        (record, attachments), = db.execute("SELECT record, attachments FROM outbox").fetchall()
    assert type(attachments) is bytes and len(attachments) > MIB and '"_placeholder":true' in record
    after, replies = SxClient(server.url, store=path, reconnection_delay=0.05), []
    after.on_reply("upload", replies.append)
    try:
        await after.connect("valid")
        await wait_until(lambda: replies and after.queued == 0, timeout=10)
        assert handled == [{"name": "offline", "file": pattern * 4096}]
        assert replies[0].sent == handled[0] and replies[0].result["back"] == (pattern * 4096)[::-1]
    finally:
        await after.close()


async def test_the_client_limit_counts_attachment_bytes(start_server, make_client):
    client = make_client((await start_server(file_routes([]))).url)
    with pytest.raises(PayloadTooLarge) as caught:
        await client.send("upload", {"file": bytes(2 * MIB)})
    assert caught.value.code == "PAYLOAD_TOO_LARGE" and client.queued == 0
    with pytest.raises(PayloadTooLarge):  # in pieces, each under the limit, together over it
        await client.send("upload", {"file": [bytes(MIB), bytes(MIB)]})
    await client.connect("valid")
    assert (await client.send("upload", {"file": bytes(2 * MIB - 200)}))["back"] == bytes(2 * MIB - 200)


async def test_the_server_closes_a_connection_whose_attachments_exceed_its_limit(
        start_server, raw_client, make_client):
    handled = []
    server = await start_server(file_routes(handled), max_message_size=10_000)
    sio = await raw_client(server.url)
    gone = asyncio.Event()
    sio.on("disconnect", lambda *args: gone.set())
    message = {"meta": {"type": "upload", "id": protocol.uuid7()}, "data": {"file": [bytes(6000), bytes(6000)]}}
    await sio.emit("message", message)  # each attachment under the limit, the two together over it
    await asyncio.wait_for(gone.wait(), 5)
    assert handled == []
    other = make_client(server.url)  # the server goes on
    await other.connect("valid")
    assert (await other.send("upload", {"file": bytes(9000)}))["back"] == bytes(9000)


async def test_the_outbox_bound_counts_attachment_bytes_of_queued_and_restored_sends(start_server, tmp_path):
    from shotx.client import OutboxFull

    path = tmp_path / "client.sqlite3"
    server = await start_server(file_routes([]))
    before = SxClient(server.url, store=path, max_queued_bytes=MIB + MIB // 2)
    await before.queue("upload", {"file": bytes(MIB)})
    with pytest.raises(OutboxFull) as caught:
        await before.queue("upload", {"file": bytes(MIB)})
    assert caught.value.reason == "bytes" and before.queued == 1
    await before.close()
    after = SxClient(server.url, store=path, max_queued_bytes=MIB + MIB // 2)
    try:
        await after.restore()
        assert after.queued == 1 and after.outbox.bytes > MIB  # the restored record's bytes count
        with pytest.raises(OutboxFull):
            await after.queue("upload", {"file": bytes(MIB)})
    finally:
        await after.close()
