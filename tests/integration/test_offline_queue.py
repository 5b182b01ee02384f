"""Sends made offline are queued, flushed in order on connect, each resolved."""

import asyncio

import pytest

from shotx.client import PayloadTooLarge, SxClient


def recording(handled):
    def setup(sx):
        async def queued_route(data, socket):
            handled.append(data["n"])
            return {"received": data}
        sx.on_message("queued_route", queued_route)
    return setup


async def test_offline_sends_queue_then_flush_with_replies(start_server, make_client):
    handled = []
    client = make_client((await start_server(recording(handled))).url)
    assert not client.is_connected
    first = asyncio.ensure_future(client.send("queued_route", {"n": 1}))
    second = asyncio.ensure_future(client.send("queued_route", {"n": 2}))
    await asyncio.sleep(0.05)
    assert client.queued == 2 and handled == []
    await client.connect("token")
    assert await asyncio.wait_for(asyncio.gather(first, second), 5) == [
        {"received": {"n": 1}}, {"received": {"n": 2}}]
    assert handled == [1, 2] and client.queued == 0


async def test_large_offline_queue_flushes_in_send_order(start_server, make_client):
    handled = []
    client = make_client((await start_server(recording(handled))).url, flush_window=16)
    sends = [asyncio.ensure_future(client.send("queued_route", {"n": n})) for n in range(300)]
    await asyncio.sleep(0.05)
    await client.connect("token")
    replies = await asyncio.wait_for(asyncio.gather(*sends), 20)
    assert [r["received"]["n"] for r in replies] == list(range(300))
    assert handled == list(range(300)) and client.queued == 0


async def test_flush_keeps_at_most_flush_window_messages_in_flight(start_server, make_client):
    running, most, handled = [0], [0], []

    def setup(sx):
        async def slow_route(data, socket):
            running[0] += 1
            most[0] = max(most[0], running[0])
            await asyncio.sleep(0.005)
            running[0] -= 1
            handled.append(data)
            return data
        sx.on_message("slow_route", slow_route)

    client = make_client((await start_server(setup)).url, flush_window=8)
    sends = [asyncio.ensure_future(client.send("slow_route", n)) for n in range(100)]
    await asyncio.sleep(0.05)
    await client.connect("token")
    assert await asyncio.wait_for(asyncio.gather(*sends), 20) == list(range(100))
    assert 2 <= most[0] <= 8 and handled == list(range(100))


async def test_acked_records_leave_the_store_in_batches_and_all_before_close(start_server, tmp_path):
    from shotx.client.sqlite_store import SqliteStore

    handled = []
    server = await start_server(recording(handled))
    path = tmp_path / "batches.sqlite3"
    client = SxClient(server.url, store=path, flush_window=64)
    batches = []
    remove = client.store.remove_outbox

    async def counted(record_ids):
        batches.append(len(record_ids))
        await asyncio.sleep(0.002)  # a write that takes a while, like IndexedDB's: acks pile up meanwhile
        await remove(record_ids)

    client.store.remove_outbox = counted
    sends = [asyncio.ensure_future(client.send("queued_route", {"n": n})) for n in range(300)]
    await asyncio.sleep(0.05)
    await client.connect("token")
    await asyncio.wait_for(asyncio.gather(*sends), 20)
    await client.close()  # waits for the deletions still on their way
    assert sum(batches) == 300 and len(batches) < 150, batches
    again = SqliteStore(path)
    try:
        assert (await again.load()).outbox == []
    finally:
        await again.close()
    assert handled == list(range(300))


async def test_outbox_survives_a_client_restart_with_sqlite(start_server, tmp_path):
    handled = []
    server = await start_server(recording(handled))
    path = tmp_path / "client.sqlite3"
    before = SxClient(server.url, store=path)
    pending = [asyncio.ensure_future(before.send("queued_route", {"n": n})) for n in range(5)]
    await asyncio.sleep(0.05)
    assert before.queued == 5
    for task in pending:
        task.cancel()
    await before.close()  # the process "dies" with five sends owed

    after = SxClient(server.url, store=path, reconnection_delay=0.05)
    try:
        await after.connect("token")
        for _ in range(200):
            if after.queued == 0 and len(handled) == 5:
                break
            await asyncio.sleep(0.02)
        assert handled == [0, 1, 2, 3, 4] and after.queued == 0
    finally:
        await after.close()
    reopened = SxClient(server.url, store=path)
    assert (await reopened.store.load()).outbox == []
    await reopened.close()


async def test_oversized_and_non_json_sends_fail_before_queueing(start_server, make_client):
    client = make_client((await start_server(recording([]))).url)
    with pytest.raises(PayloadTooLarge) as caught:
        await client.send("queued_route", {"blob": "x" * (2 * 1024 * 1024)})
    assert caught.value.code == "PAYLOAD_TOO_LARGE" and caught.value.limit == 2 * 1024 * 1024
    with pytest.raises(TypeError):
        await client.send("queued_route", {"bad": object()})
    with pytest.raises(TypeError, match="type"):
        await client.send("", {})
    with pytest.raises(TypeError, match="type"):
        await client.send(None, {})
    assert client.queued == 0


async def test_disconnect_when_connected_and_when_not(start_server, make_client):
    client = make_client((await start_server(recording([]))).url)
    await client.disconnect()  # never connected: a no-op
    await client.connect("token")
    await client.disconnect()
    assert not client.is_connected and client.state == "disconnected"
    await client.disconnect()
    await client.connect("token")  # and it can come back
    assert client.is_connected


async def test_replies_of_sends_restored_from_the_store_reach_on_reply(start_server, tmp_path, wait_until):
    """A send queued before a restart (or a reload) flushes afterwards, but its send() is
    gone: its reply, or its error, reaches on_reply with the record's id and data."""
    def routes(sx):
        def create(data, socket):
            if data["name"] == "bad":
                raise ValueError("no such item")
            return {"created": data["name"].upper()}
        sx.on_message("create_item", create)
        sx.on_message("other", lambda data, socket: data)

    server = await start_server(routes)
    path = tmp_path / "client.sqlite3"
    before = SxClient(server.url, store=path)
    made = [await before.queue("create_item", {"name": name}) for name in ("a", "bad", "b")]
    await before.queue("other", 1)
    ids = [record.id for record in before.outbox.pending()][:3]
    await before.close()  # the process ends with them queued
    for future in made:
        future.cancel()
    after = SxClient(server.url, store=path, reconnection_delay=0.05)
    got = []

    @after.on_reply("create_item")
    async def created(reply):
        got.append(reply)

    try:
        await after.connect("t")
        await wait_until(lambda: len(got) == 3 and after.queued == 0)
        assert [r.id for r in got] == ids and [r.sent for r in got] == [{"name": "a"}, {"name": "bad"}, {"name": "b"}]
        assert [r.result for r in got] == [{"created": "A"}, None, {"created": "B"}]
        assert got[1].error.code == 2004 and "no such item" in got[1].error.message
        assert await after.send("create_item", {"name": "c"}) == {"created": "C"}  # awaited here: not on_reply
        assert len(got) == 3
    finally:
        await after.close()
