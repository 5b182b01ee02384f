"""Per-connection limits over real sockets: a clear 2007 reply, never a disconnect,
nothing else affected (other connections, the limited one's later messages)."""

from __future__ import annotations

import asyncio

from shotx.client import MessageError, protocol
from shotx.server.limits import Limits


def echo(sx):
    sx.on_message("echo", lambda data, socket: data)

    async def slow(data, socket):
        await asyncio.sleep(0.2)
        return data
    sx.on_message("slow", slow)


async def test_a_flood_past_the_rate_gets_2007_and_the_others_go_on(start_server, raw_client, make_client):
    server = await start_server(echo, limits=Limits(messages_per_second=5, message_burst=10))
    flooder = await raw_client(server.url, client="flooder")
    replies = await asyncio.gather(*(flooder.call("message", protocol.request("echo", n), timeout=5)
                                     for n in range(30)))
    codes = [r["meta"].get("code") for r in replies]
    assert codes.count(None) == 10 and codes.count(protocol.LIMIT_EXCEEDED) == 20  # the burst, then refused
    assert replies[-1]["meta"]["error"] == "Limit exceeded: more than 5 messages a second (burst 10)"
    bystander = make_client(server.url)
    await bystander.connect("t")
    assert await bystander.send("echo", "fine") == "fine"  # another connection has its own bucket
    await asyncio.sleep(0.25)  # the flooder's bucket refills at 5 a second: one token in 0.2 s
    again = await flooder.call("message", protocol.request("echo", "later"), timeout=5)
    assert again == {"meta": {"success": True}, "data": "later"} and flooder.connected


async def test_handlers_at_once_and_rooms_per_connection(start_server, make_client):
    server = await start_server(echo, limits=Limits(messages_per_second=None, handlers_at_once=2, rooms=3))
    client = make_client(server.url)
    await client.connect("t")
    # Two run at once; the server answers the others 2007, and the client sends them again later:
    # a 2007 is "not handled", not a final error (tests/integration/test_outbox_limits.py has more)
    outcomes = await asyncio.wait_for(asyncio.gather(*(client.send("slow", n) for n in range(4))), 10)
    assert outcomes == [0, 1, 2, 3] and client.queued == 0
    for room in ("a", "b", "c"):
        await client.join(room)
    await client.join("a")  # a room it is in already does not count again
    try:
        await client.join("d")
    except MessageError as error:
        assert error.code == protocol.LIMIT_EXCEEDED and "at most 3 rooms" in error.message
    else:
        raise AssertionError("a fourth room was joined")
    assert not server.sx.has_members("d")
    await client.leave("a")
    await client.join("d")
    assert server.sx.has_members("d")
