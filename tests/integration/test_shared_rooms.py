"""Several servers sharing one Redis: every member sees one order, nothing lost.

Two SxServers on two ports share a RedisStore (the machine's Redis, under a
prefix of the test's own). Clients connect to either.
"""

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import redis.asyncio as redis

from shotx.client import SxClient
from shotx.server import RedisStore


def collect(client, into):
    client.on_message("n", lambda data, meta: into.append((meta["offset"], data["n"])))


@pytest.fixture
async def two_servers(redis_prefix, redis_url, start_server):
    def routes(sx):
        sx.on_message("count", lambda data, socket: counted.append(data) or len(counted))

    counted = []
    first = await start_server(routes, store=RedisStore(redis_url, prefix=redis_prefix))
    second = await start_server(routes, store=RedisStore(redis_url, prefix=redis_prefix))
    return first, second, counted


async def test_a_send_on_one_server_reaches_members_on_both(two_servers, make_client, wait_until):
    first, second, _ = two_servers
    here, there, got_here, got_there = make_client(first.url), make_client(second.url), [], []
    collect(here, got_here)
    collect(there, got_there)
    for client in (here, there):
        await client.connect("t")
        await client.join("news")
    await second.sx.to("news").send("n", {"n": 1})
    await first.sx.to("news").send("n", {"n": 2})
    await wait_until(lambda: got_here == got_there == [(1, 1), (2, 2)])


async def test_concurrent_sends_from_both_servers_arrive_in_offset_order(two_servers, make_client, wait_until):
    """A member drops a message at or below the offset it handled: out of order would mean lost."""
    first, second, _ = two_servers
    members = [make_client(server.url) for server in (first, second, first)]
    got = [[] for _ in members]
    for client, into in zip(members, got):
        collect(client, into)
        await client.connect("t")
        await client.join("busy")

    async def sender(server, numbers):
        for n in numbers:
            await server.sx.to("busy").send("n", {"n": n})

    await asyncio.gather(sender(first, range(0, 200, 2)), sender(second, range(1, 200, 2)))
    await wait_until(lambda: all(len(into) == 200 for into in got), timeout=15)
    for into in got:
        assert [offset for offset, _ in into] == list(range(1, 201))
        assert sorted(n for _, n in into) == list(range(200))
    assert got[0] == got[1] == got[2]


async def test_backlog_sent_through_one_server_goes_to_the_first_joiner_on_the_other(two_servers, make_client):
    first, second, _ = two_servers
    for n in (1, 2, 3):
        await second.sx.to("empty").send("n", {"n": n})
    joiner, got = make_client(first.url), []
    collect(joiner, got)
    await joiner.connect("t")
    answer = await joiner.join("empty")
    assert [n for _, n in got] == [1, 2, 3] and answer["replayed"] == 3
    later, more = make_client(second.url), []
    collect(later, more)
    await later.connect("t")
    await later.join("empty")
    assert more == []  # the Shotx backlog goes to one joiner, across servers too


async def test_a_resend_to_another_server_gets_the_remembered_reply(two_servers, raw_client):
    first, second, counted = two_servers
    message = {"meta": {"type": "count", "id": "0199-resend-1"}, "data": "once"}
    on_first, on_second = await raw_client(first.url), await raw_client(second.url)
    reply = await on_first.call("message", message, timeout=5)
    await first.sx.store.flushed()  # replies reach Redis within 50 ms; a resend comes after a reconnect
    again = await on_second.call("message", {**message, "meta": {**message["meta"], "resend": True}}, timeout=5)
    assert reply == again == {"meta": {"success": True}, "data": 1}
    assert counted == ["once"]


async def member_on_first(servers, make_client, wait_until, room):
    """A member of ``room`` on the first server, once it got a first send made on the second."""
    first, second, _ = servers
    member, got = make_client(first.url), []
    collect(member, got)
    await member.connect("t")
    await member.join(room)
    await second.sx.to(room).send("n", {"n": 1})
    await wait_until(lambda: got == [(1, 1)])
    return second, got


async def test_a_live_message_the_subscription_missed_is_filled_from_the_log(two_servers, make_client, wait_until,
                                                                              redis_url, redis_prefix):
    """Redis publishes at most once: an entry that reached the log but not a server's
    subscription (written here straight into Redis, unpublished) still reaches members, in order."""
    second, got = await member_on_first(two_servers, make_client, wait_until, "gappy")
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        head = await direct.hincrby(f"{redis_prefix}:room:gappy:bounds", "head", 1)
        await direct.xadd(f"{redis_prefix}:room:gappy:log",
                          {"id": "unpublished", "type": "n", "data": json.dumps({"n": 2}), "ts": "1.0"},
                          id=f"0-{head}")
    finally:
        await direct.aclose()
    await second.sx.to("gappy").send("n", {"n": 3})
    await wait_until(lambda: got == [(1, 1), (2, 2), (3, 3)])


async def test_an_entry_the_subscription_missed_right_after_a_join_is_filled_from_the_log(
        two_servers, make_client, wait_until, redis_url, redis_prefix):
    """Defect: a join did not tell shared delivery where its replay ended, so the first
    live entry after it, if the subscription missed it, was never filled in."""
    first, second, _ = two_servers
    member, got = make_client(first.url), []
    collect(member, got)
    await member.connect("t")
    await member.join("fresh")  # nothing delivered here yet: offset 0
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        head = await direct.hincrby(f"{redis_prefix}:room:fresh:bounds", "head", 1)
        await direct.xadd(f"{redis_prefix}:room:fresh:log",
                          {"id": "unpublished", "type": "n", "data": json.dumps({"n": 1}), "ts": "1.0"},
                          id=f"0-{head}")
    finally:
        await direct.aclose()
    await second.sx.to("fresh").send("n", {"n": 2})
    await wait_until(lambda: got == [(1, 1), (2, 2)])


async def test_the_log_outlives_a_server(redis_prefix, redis_url, start_server, make_client):
    first = await start_server(store=RedisStore(redis_url, prefix=redis_prefix))
    for n in (1, 2):
        await first.sx.to("kept").send("n", {"n": n})
    await first.stop()
    again = await start_server(store=RedisStore(redis_url, prefix=redis_prefix))
    client, got = make_client(again.url), []
    collect(client, got)
    await client.connect("t")
    await client.join("kept")
    assert got == [(1, 1), (2, 2)]


async def test_a_server_whose_subscription_dropped_subscribes_again_and_catches_up(
        two_servers, make_client, wait_until, redis_url, redis_prefix):
    second, got = await member_on_first(two_servers, make_client, wait_until, "flaky")
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:  # Redis drops the servers' subscriptions (only this test's: they carry its prefix)
        subscribers = await direct.client_list(_type="pubsub")
        killed = [await direct.client_kill_filter(_id=c["id"]) for c in subscribers
                  if c["name"] == f"shotx:{redis_prefix}"]
        assert len(killed) == 2
    finally:
        await direct.aclose()
    await second.sx.to("flaky").send("n", {"n": 2})  # published while nobody listens
    await wait_until(lambda: got == [(1, 1), (2, 2)], timeout=5)
    await second.sx.to("flaky").send("n", {"n": 3})
    await wait_until(lambda: got == [(1, 1), (2, 2), (3, 3)])


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(redis_prefix, redis_url, start_server):
    """150 sends at once to 150 rooms (so none waits on a room lock) through a pool of 5 connections."""
    server = await start_server(store=RedisStore(redis_url, prefix=redis_prefix, max_connections=5))
    sent = await asyncio.gather(*(server.sx.to(f"burst-{n}").send("n", {"n": n}) for n in range(150)))
    assert [answer["offset"] for answer in sent] == [1] * 150
    assert [(await server.sx.store.read(f"burst-{n}", 0, 5))[0].data for n in range(150)] == [
        {"n": n} for n in range(150)]


async def test_remember_returns_once_its_reply_is_in_redis(redis_url, redis_prefix):
    """The replies of one loop turn go in one write; each ``remember`` returns once it is
    there (another process finds it at once), and this process finds it while it is out."""
    writer, reader = RedisStore(redis_url, prefix=redis_prefix), RedisStore(redis_url, prefix=redis_prefix)
    await writer.open()
    await reader.open()
    try:
        writes = [asyncio.ensure_future(writer.remember("p", f"m{n}", f'{{"data":{n}}}', 10.0)) for n in range(20)]
        for _ in range(3):  # every remember has run up to its wait, and the write has started
            await asyncio.sleep(0)
            assert await writer.recall("p", "m1") == '{"data":1}'  # kept here while it is written
        await asyncio.gather(*writes)
        assert [await reader.recall("p", f"m{n}") for n in range(20)] == [f'{{"data":{n}}}' for n in range(20)]
    finally:
        await writer.close()
        await reader.close()


async def test_a_room_sends_flushed_leaves_the_replies_write_to_remember(redis_url, redis_prefix):
    """Defect: ``flushed(entry)``, which every room send awaits, wrote the replies pending in
    that loop turn itself; the write ``remember`` had queued then found nothing, and told it
    success however the real write ended. Here every write of replies fails (the replies key
    holds a string: Redis answers WRONGTYPE), and ``remember`` must say so."""
    store = RedisStore(redis_url, prefix=redis_prefix)
    await store.open()
    direct = redis.Redis.from_url(redis_url)
    try:
        await direct.set(store._replies_key, "not a hash")
        entry = await store.append("r", "n", "{}", "e1", 1.0, False, 10)
        remembered, flushed = await asyncio.gather(store.remember("p", "m1", '{"data":1}', 10.0),
                                                   store.flushed(entry), return_exceptions=True)
        assert isinstance(remembered, redis.ResponseError) and "WRONGTYPE" in str(remembered), remembered
        assert flushed is None  # the append is durable: a reply's failed write is not the room send's
    finally:
        await direct.delete(store._replies_key)
        await direct.aclose()
        await store.close()


async def test_two_demo_server_processes_on_one_redis(redis_url, redis_prefix, wait_until):
    """Real processes (nothing shared but Redis): sends through both reach a member of one, in order."""
    def start(port=0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "shotx.server", "--port", str(port), "--store", redis_url,
             "--prefix", redis_prefix, "--interval", "0", "--web", os.devnull], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert "listening on" in line, line
        return proc, line.split()[-1]

    (first, first_url), (second, second_url) = start(), start()
    clients = [SxClient(first_url), SxClient(first_url), SxClient(second_url)]
    try:
        member, on_first, on_second = clients
        got = []
        member.on_message("notification", lambda data, meta: got.append((meta["offset"], data["n"])))
        for client in clients:
            await client.connect("valid")
        await member.join("user-room")

        async def publish(client, numbers):
            for n in numbers:
                await client.send("publish", {"n": n})
        await asyncio.gather(publish(on_first, range(0, 60, 2)), publish(on_second, range(1, 60, 2)))
        await wait_until(lambda: len(got) == 60, timeout=15)
        assert [offset for offset, _ in got] == list(range(1, 61))
        assert sorted(n for _, n in got) == list(range(60))
    finally:
        for client in clients:
            await client.close()
        for proc in (first, second):
            proc.terminate()
            proc.wait(10)
            proc.stdout.close()


def test_a_redis_url_as_store_means_a_redis_store_with_the_default_prefix():
    from aiohttp import web

    from shotx.server import SxServer

    sx = SxServer(web.Application(), store="redis://127.0.0.1:6379/0")  # not opened: no key is touched
    assert isinstance(sx.store, RedisStore) and sx.store.prefix == "shotx" and sx.shared is not None
    assert SxServer(web.Application(), store="memory").shared is None


async def test_what_a_member_got_live_is_no_backlog_for_the_next_first_joiner(two_servers, make_client, wait_until):
    """The delivered mark follows live deliveries (within the shared delivery's mark delay)."""
    first, second, _ = two_servers
    await member_on_first(two_servers, make_client, wait_until, "marked")
    marks = []
    for _ in range(50):
        marks.append((await second.sx.store.bounds("marked")).delivered)
        if marks[-1] == 1:
            break
        await asyncio.sleep(0.01)
    assert marks[-1] == 1
    newcomer, got = make_client(second.url), []
    collect(newcomer, got)
    await newcomer.connect("t")
    answer = await newcomer.join("marked")  # no since: the Shotx backlog, which is empty now
    assert answer["replayed"] == 0 and got == []


async def member_of_a_replaced_log(first: Any, second: Any, room: str, make_client: Any, wait_until: Any,
                                   redis_url: str, redis_prefix: str) -> tuple[Any, list[Any], list[Any]]:
    """A member on ``first`` that got offsets 1-3 of ``room`` from ``second``, then the room's
    Redis keys deleted, as in a Redis that restarted empty; returns it, what it got and its gaps."""
    member, got, gaps = make_client(first.url), [], []
    collect(member, got)
    member.on_gap(gaps.append)
    await member.connect("t")
    await member.join(room)
    for n in (1, 2, 3):
        await second.sx.to(room).send("n", {"n": n})
    await wait_until(lambda: got == [(1, 1), (2, 2), (3, 3)])
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await direct.delete(*[key async for key in direct.scan_iter(match=f"{redis_prefix}:room:{room}:*")])
    finally:
        await direct.aclose()
    return member, got, gaps


async def test_a_log_replaced_under_running_servers_is_replayed_from_its_start(two_servers, make_client, wait_until,
                                                                               redis_url, redis_prefix):
    """A Redis that comes back empty (redis-py subscribes again by itself) must not hand
    members the new log's entries as if they followed their old offsets: each live entry
    carries its room's epoch, and members of a replaced log rejoin, told of the new history."""
    first, second, _ = two_servers
    member, got, gaps = await member_of_a_replaced_log(first, second, "swap", make_client, wait_until,
                                                       redis_url, redis_prefix)
    await second.sx.to("swap").send("n", {"n": 100})  # offset 1 of a new history
    await wait_until(lambda: got == [(1, 1), (2, 2), (3, 3), (1, 100)])
    assert [(gap.reason, gap.since, gap.head) for gap in gaps] == [("new_history", 3, 1)]
    await second.sx.to("swap").send("n", {"n": 101})
    await wait_until(lambda: got[-1] == (2, 101))


async def test_a_join_that_meets_a_replaced_log_first_sends_the_other_members_away(
        two_servers, make_client, wait_until, redis_url, redis_prefix):
    """Defect (the Redis-restart fault test, seed 60501729: three steady members lost all 200
    messages of the new history): after a Redis came back empty, a join on this process saw the
    new history before any live entry did, and took its epoch as the room's here. The members
    already in the room, on old offsets, were never sent away: every new entry looked like their
    history's and was dropped by them as at or below their offset."""
    first, second, _ = two_servers
    member, got, gaps = await member_of_a_replaced_log(first, second, "swap-join", make_client, wait_until,
                                                       redis_url, redis_prefix)
    newcomer = make_client(first.url)
    await newcomer.connect("t")
    await newcomer.join("swap-join")  # the first look at the new history is this join's, on the member's server
    await second.sx.to("swap-join").send("n", {"n": 100})  # offset 1 of the new history
    await wait_until(lambda: got == [(1, 1), (2, 2), (3, 3), (1, 100)])
    assert [(gap.reason, gap.since) for gap in gaps] == [("new_history", 3)]
