"""The client's outbox limits on a real server: bounded by count and bytes
(restored records count), and a 2007 from the server's limits is sent again
later, in order, each message handled once."""

from __future__ import annotations

import asyncio
import time

import pytest
import socketio

from shotx.client import OutboxFull, SxClient, binary, protocol
from shotx.client.sqlite_store import SqliteStore
from shotx.server.limits import Limits

from recording_route import recording  # tests/integration is on sys.path


async def stored_numbers(client):
    return [record.data["n"] for record in (await client.store.load()).outbox]


async def test_a_full_outbox_refuses_the_next_send_and_keeps_what_it_holds(start_server, make_client):
    handled = []
    client = make_client((await start_server(recording(handled))).url, max_queued=5)
    futures = [await client.queue("route", {"n": n}) for n in range(5)]
    with pytest.raises(OutboxFull) as refused:
        await client.queue("route", {"n": 5})
    assert (refused.value.code, refused.value.reason) == ("OUTBOX_FULL", "count")
    assert str(refused.value) == "OUTBOX_FULL: 5 messages queued (max_queued=5)"
    with pytest.raises(OutboxFull):
        await client.send("route", {"n": 6})  # send() the same way
    assert client.queued == 5 and await stored_numbers(client) == [0, 1, 2, 3, 4]
    await client.connect("t")
    assert await asyncio.wait_for(asyncio.gather(*futures), 5) == [{"n": n} for n in range(5)]
    assert handled == [0, 1, 2, 3, 4] and client.queued == 0
    assert await client.send("route", {"n": 7}) == {"n": 7}  # room again once acknowledged


async def test_the_byte_bound_counts_encoded_sizes(start_server, make_client):
    handled = []
    one = binary.encoded_size({"meta": {"type": "route", "id": protocol.uuid7()}, "data": {"n": 0, "pad": "x" * 1000}})
    client = make_client((await start_server(recording(handled))).url, max_queued=None, max_queued_bytes=3 * one)
    futures = [await client.queue("route", {"n": n, "pad": "x" * 1000}) for n in range(3)]  # exactly at the bound
    with pytest.raises(OutboxFull) as refused:
        await client.queue("route", {"n": 3, "pad": "x"})
    assert refused.value.reason == "bytes"
    assert str(refused.value) == f"OUTBOX_FULL: {3 * one} bytes queued + {one - 999} bytes > max_queued_bytes={3 * one}"
    assert client.queued == 3 and await stored_numbers(client) == [0, 1, 2]
    await client.connect("t")
    await asyncio.wait_for(asyncio.gather(*futures), 5)
    assert handled == [0, 1, 2] and client.outbox.bytes == 0


async def test_records_restored_from_the_store_count_against_the_bound(start_server, make_client, tmp_path,
                                                                      wait_until):
    handled = []
    server = await start_server(recording(handled))
    path = tmp_path / "client.sqlite3"
    first = SxClient(server.url, store=SqliteStore(path), max_queued=3)
    for n in range(3):
        await first.queue("route", {"n": n})
    await first.close()  # a restart with three sends owed
    again = make_client(server.url, store=SqliteStore(path), max_queued=3)
    with pytest.raises(OutboxFull, match="3 messages queued"):
        await again.queue("route", {"n": 3})  # restores first, then counts
    assert again.queued == 3 and await stored_numbers(again) == [0, 1, 2]
    await again.connect("t")
    await wait_until(lambda: again.queued == 0)  # the restored three flushed: room again
    assert await again.send("route", {"n": 4}) == {"n": 4}
    assert handled == [0, 1, 2, 4]


async def test_durable_says_whether_the_store_outlives_the_process(make_client, tmp_path):
    assert make_client("http://127.0.0.1:1").durable is False
    assert make_client("http://127.0.0.1:1", store=str(tmp_path / "c.sqlite3")).durable is True


@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_bad_bounds_fail_at_construction(bad):
    with pytest.raises(ValueError, match="positive int or None"):
        SxClient("http://127.0.0.1:1", max_queued=bad)


async def test_a_flush_through_a_tight_rate_limit_handles_each_once_in_order(start_server, make_client):
    """2,000 queued offline against 200 a second (burst 50): most of the flush is
    answered 2007 at first, and everything ends handled once, in send order."""
    handled, refusals = [], []
    server = await start_server(recording(handled), limits=Limits(messages_per_second=200, message_burst=50))
    client = make_client(server.url)
    futures = [await client.queue("route", {"n": n}) for n in range(2000)]
    started = time.monotonic()
    await client.connect("t")
    replies = await asyncio.wait_for(asyncio.gather(*futures), 60)
    elapsed = time.monotonic() - started
    assert replies == [{"n": n} for n in range(2000)]
    assert handled == list(range(2000)) and client.queued == 0
    # 1,950 beyond the burst at 200 a second take at least 9.75 s; the backoff should not double that
    print(f"outbox-limits: flush of 2000 through 200/s burst 50 took {elapsed:.1f}s")
    assert elapsed >= 9.5


async def test_direct_sends_past_the_rate_are_sent_again_in_order(start_server, make_client):
    """A message refused 2007 comes again as a first send, not a resend: the server said it
    did not handle it, so a lookup of its reply (a store round trip on Redis) is not needed."""
    handled, resent = [], []

    def setup(sx):
        def route(data, socket, meta):
            handled.append(data["n"])
            resent.append(bool(meta.get("resend")))
            return {"n": data["n"]}
        sx.on_message("route", route)

    server = await start_server(setup, limits=Limits(messages_per_second=100, message_burst=10))
    client = make_client(server.url, flush_window=32)
    await client.connect("t")
    replies = await asyncio.wait_for(asyncio.gather(*(client.send("route", {"n": n}) for n in range(200))), 30)
    assert replies == [{"n": n} for n in range(200)] and handled == list(range(200))
    assert not any(resent), f"{sum(resent)} of 200 came flagged as resends"


async def test_a_refusal_holds_the_later_messages_of_an_ordered_connection(start_server):
    """What keeps the order: after a 2007, the server refuses every later message of
    a connection that said ``ordered`` until the refused one comes again."""
    handled = []
    server = await start_server(recording(handled), limits=Limits(messages_per_second=10, message_burst=2))
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(server.url, auth={"token": "t", "client": "c1", "ordered": True},
                      socketio_path="shotx", transports=["websocket"])

    async def send(n, resend=False):
        meta = {"type": "route", "id": f"id-{n}", **({"resend": True} if resend else {})}
        return (await sio.call("message", {"meta": meta, "data": {"n": n}}, timeout=5))["meta"]

    try:
        answers = await asyncio.gather(*(send(n) for n in range(4)))
        assert [a.get("code") for a in answers] == [None, None, protocol.LIMIT_EXCEEDED, protocol.LIMIT_EXCEEDED]
        held = "Limit exceeded: an earlier message of this connection was refused; send it again first"
        assert answers[2]["error"].startswith("Limit exceeded: more than 10") and answers[3]["error"] == held
        join = await sio.call("message", protocol.request(protocol.JOIN, {"room": "r"}), timeout=5)
        assert "a second" in join["meta"]["error"]  # a built-in is not part of the stream: never held
        await asyncio.sleep(0.25)  # the bucket refills by the clock (10 a second): two tokens
        assert (await send(3, resend=True))["error"] == held  # still not the refused one: held, no token taken
        assert (await send(2, resend=True))["success"] is True
        assert (await send(3, resend=True))["success"] is True
        assert handled == [0, 1, 2, 3]
    finally:
        await sio.disconnect()
