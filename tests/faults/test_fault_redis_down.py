"""A Redis that is down for a moment under a running server: nothing may hang.

Found by reading the Redis-restart fault test's one run where 2 sends were
never answered in 60 s: a resend (``meta.resend``) looks its remembered
reply up in the store before anything else, and while Redis was down that
look-up raised. python-socketio sends no ack for a handler that raises, and
the connection stayed open, so the client, which waits for an ack as long
as its connection lives, waited for ever. A resend the server cannot look up
must end its connection instead: the client reconnects and sends it again.

Deterministic: a raw Socket.IO client (the test decides exactly what is a
resend), the fault server in a process of its own, a private redis-server
stopped and started by the test.
"""

from __future__ import annotations

import asyncio

import socketio  # type: ignore[import-untyped]

from shotx.server import RedisStore

from fault_processes import read_runs

ANSWER_WITHIN = 10.0  # seconds: on loopback an ack or a close takes milliseconds; this is the failure's deadline


async def connected(url: str) -> tuple[socketio.AsyncClient, asyncio.Event]:
    sio = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    sio.on("disconnect", lambda *_: gone.set())
    await sio.connect(url, auth={"token": "valid", "client": "down-test"}, socketio_path="shotx",
                      transports=["websocket"])
    return sio, gone


def resend(n: int) -> dict[str, object]:
    return {"meta": {"type": "fault_send", "id": f"0199-down-{n}", "resend": True}, "data": {"c": 0, "n": n}}


async def resend_ends_its_connection(sio: socketio.AsyncClient, gone: asyncio.Event, n: int, within: float,
                                     server) -> None:  # type: ignore[no-untyped-def]
    """Resend ``n``: its connection must end within ``within`` seconds, unanswered and not run."""
    answered = asyncio.get_running_loop().create_future()
    await sio.emit("message", resend(n), callback=lambda *reply: answered.set_result(reply))
    await asyncio.wait_for(asyncio.wait([answered, asyncio.ensure_future(gone.wait())],
                                        return_when=asyncio.FIRST_COMPLETED), within)
    assert gone.is_set() and not answered.done(), "the resend was neither answered nor its connection ended"
    assert read_runs(server.runs) == []  # not run: whether it ran before, the store could not say


async def resend_runs_once(server, n: int) -> None:  # type: ignore[no-untyped-def]
    """Resend ``n`` on a new connection: answered, and run once in all."""
    again, _ = await connected(server.url)
    try:
        reply = await again.call("message", resend(n), timeout=ANSWER_WITHIN)
        assert reply["meta"]["success"] is True and reply["data"]["id"] == f"0199-down-{n}"
        assert [run["id"] for run in read_runs(server.runs)] == [f"0199-down-{n}"]
    finally:
        await again.disconnect()


async def test_a_resend_the_store_cannot_look_up_ends_its_connection_and_runs_once_redis_is_back(
        servers, private_redis):
    server = servers(private_redis.url)
    await server.start()
    sio, gone = await connected(server.url)
    try:
        await private_redis.kill()
        await resend_ends_its_connection(sio, gone, 1, ANSWER_WITHIN, server)
    finally:
        await sio.disconnect()
    await private_redis.start()
    await resend_runs_once(server, 1)


async def test_nothing_sent_after_an_unanswerable_resend_runs_before_it(servers, private_redis):
    """Defect (the Redis-restart fault test with sends going through the restart: 4 and 40 sends
    out of order): the message behind such a resend on the same connection, a first send that
    needs no look-up, took its turn when the resend failed and ran first. Once a connection is
    ending because a message could not be answered, nothing after it runs: all of it comes
    again, in order, on the next connection."""
    server = servers(private_redis.url)
    await server.start()
    sio, gone = await connected(server.url)
    try:
        await private_redis.kill()
        first_send = {"meta": {"type": "fault_send", "id": "0199-down-2"}, "data": {"c": 0, "n": 2}}
        await sio.emit("message", resend(1), callback=lambda *reply: None)
        await sio.emit("message", first_send, callback=lambda *reply: None)
        await asyncio.wait_for(gone.wait(), ANSWER_WITHIN)
    finally:
        await sio.disconnect()
    await private_redis.start()
    again, _ = await connected(server.url)  # both come again, and run in their order
    try:
        for message in (resend(1), {**first_send, "meta": {**first_send["meta"], "resend": True}}):
            assert (await again.call("message", message, timeout=ANSWER_WITHIN))["meta"]["success"] is True
    finally:
        await again.disconnect()
    assert [run["id"] for run in read_runs(server.runs)] == ["0199-down-1", "0199-down-2"]


async def test_every_command_works_once_redis_is_back(private_redis):
    """Defect: redis-py 8.1 (RESP3, whose maintenance notifications are on by default) hands
    out pooled connections the old Redis closed, and the first command on each fails with
    "Connection closed by server", however long after the restart (redis/redis-py#4252,
    fixed upstream after 8.1.0). Each such failure was a failed append, join, delivered
    mark or reply write, and a resend's look-up that got no ack (the test above)."""
    store = RedisStore(private_redis.url, prefix="back")
    await store.open()
    try:
        await asyncio.gather(*(store.append(f"r{n}", "n", "{}", f"m{n}", 1.0, False, 100) for n in range(4)))
        await private_redis.restart()
        for n in range(4):  # the pool holds up to four connections the old Redis closed
            assert (await store.bounds(f"r{n}")).head == 0
            assert await store.recall("p", f"m{n}") is None
    finally:
        await store.close()


async def test_a_resend_whose_lookup_hangs_ends_its_connection_and_runs_once_redis_answers(servers, private_redis):
    """A resend's lookup that never returns would hold its connection for ever: no ack, and
    every message behind it on that connection waiting for its turn, while the client, whose
    connection stays up, waits too. A Redis that stops answering without closing its
    connections (frozen here with SIGSTOP; a hung host or a partition looks the same) must
    cost a resend its connection after ``store_timeout``, not hold it. (redis-py's own read
    timeout, 5 s, bounds a read on a frozen connection, but no wait inside its pool; the
    deadline below is well under it, so this fails without ours.)"""
    server = servers(private_redis.url, store_timeout=0.5)
    await server.start()
    sio, gone = await connected(server.url)
    try:
        private_redis.freeze()
        await resend_ends_its_connection(sio, gone, 3, 3.5, server)
    finally:
        await sio.disconnect()
        private_redis.thaw()
    await resend_runs_once(server, 3)
