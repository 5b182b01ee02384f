"""Where a member's position in a room starts, what a join that fails leaves,
a history that was replaced, gaps the application hears of, and the order of
a join's answer and its replay. Real servers over real sockets."""

from __future__ import annotations

import asyncio

import pytest
import socketio

from shotx.client import Gap, MessageError, SxClient
from shotx.server import MemoryStore


def numbers(client, into, type_="n"):
    client.on_message(type_, lambda data, meta: into.append(data["n"]))


async def publish(sx, room, values):
    for n in values:
        await sx.to(room).send("n", {"n": n})


async def test_a_member_that_joins_and_drops_before_its_first_message_misses_nothing(
        start_server, make_client, wait_until, tmp_path):
    """Defect: X sent no since until it had handled a message, so its rejoin started
    from the room's delivered mark, which the other member had moved: 0 of 10 arrived."""
    server = await start_server(store=tmp_path / "server.sqlite3")
    other, other_got = make_client(server.url), []
    numbers(other, other_got)
    await other.connect("t")
    await other.join("r")
    x, x_got = make_client(server.url, store=tmp_path / "x.sqlite3"), []
    numbers(x, x_got)
    await x.connect("t")
    await x.join("r")
    await x.disconnect()
    await publish(server.sx, "r", range(1, 11))
    await wait_until(lambda: other_got == list(range(1, 11)))  # live: the delivered mark is at 10
    await x.connect("t")
    await wait_until(lambda: x_got == list(range(1, 11)))
    again = SxClient(server.url, store=tmp_path / "x.sqlite3")  # and from its store alone
    try:
        assert (await again.store.load()).rooms == {"r": 10}
    finally:
        await again.store.close()


class FailingReads(MemoryStore):
    """A real memory store whose next ``fail`` reads raise, as a store that lost its disk would."""

    fail = 0

    async def read(self, room, after, limit):
        if self.fail:
            self.fail -= 1
            raise OSError("disk gone")
        return await super().read(room, after, limit)


async def test_a_join_that_fails_leaves_no_member_behind_and_is_retried(start_server, make_client, wait_until):
    """Defect: the socket stayed in the room without its replay, and the client never
    asked again, so the unreplayed range was skipped once live messages moved the offset."""
    store = FailingReads()
    server = await start_server(store=store)
    await publish(server.sx, "r", (1, 2))
    client, got = make_client(server.url, reconnection_delay=0.05, reconnection_delay_max=0.1), []
    numbers(client, got)
    await client.connect("t")
    store.fail = 2  # the join and its first retry fail
    with pytest.raises(MessageError, match="disk gone"):
        await client.join("r")
    assert not server.sx.has_members("r")  # no member that skipped its replay
    await wait_until(lambda: got == [1, 2])  # the second retry joined, with the backlog
    assert server.sx.has_members("r") and store.fail == 0
    await publish(server.sx, "r", (3,))
    await wait_until(lambda: got == [1, 2, 3])


@pytest.mark.parametrize("new_messages", [60, 20])
async def test_a_server_whose_history_was_replaced_is_replayed_from_its_start(
        start_server, make_client, wait_until, tmp_path, new_messages):
    """Defect: at offset 50, rejoining a server restarted on an empty SQLite file
    skipped the new history's first 50 messages (or all up to its head)."""
    first = await start_server(store=tmp_path / "old.sqlite3")
    client, got, gaps = make_client(first.url, store=tmp_path / "client.sqlite3"), [], []
    numbers(client, got)
    client.on_gap(gaps.append)
    await client.connect("t")
    await client.join("r")
    await publish(first.sx, "r", range(1, 51))
    await wait_until(lambda: len(got) == 50)
    port = first.port
    await first.stop()
    await client.disconnect()
    second = await start_server(port=port, store=tmp_path / "new.sqlite3")
    await publish(second.sx, "r", range(1001, 1001 + new_messages))
    await client.connect("t")
    await wait_until(lambda: len(got) == 50 + new_messages)
    assert got[50:] == list(range(1001, 1001 + new_messages))
    assert gaps == [Gap("r", "new_history", 0, 50, new_messages)]
    await publish(second.sx, "r", (2001,))  # and it goes on counting in the new history
    await wait_until(lambda: got[-1] == 2001)
    assert client.rooms.offsets["r"] == new_messages + 1


async def test_messages_retention_dropped_before_a_rejoin_make_an_expired_gap(start_server, make_client, wait_until):
    server = await start_server(retention_max_messages=3)
    client, got, gaps = make_client(server.url), [], []
    numbers(client, got)

    @client.on_gap
    async def gap(found):  # async handlers are awaited, in order with the room's messages
        gaps.append((found, list(got)))

    await client.connect("t")
    await client.join("r")
    await publish(server.sx, "r", (1,))
    await wait_until(lambda: got == [1])
    await client.disconnect()
    await publish(server.sx, "r", range(2, 11))  # 2..7 go to retention
    await client.connect("t")
    await wait_until(lambda: got == [1, 8, 9, 10])
    assert gaps == [(Gap("r", "expired", 6, 1, 10), [1])]  # told before 8..10 were handled


async def test_the_join_answer_leaves_before_the_backlog(start_server):
    """A Shotx JavaScript app registers its handler after ``await join()``: the
    original answers first. Our client's join() still returns with the backlog handled."""
    server = await start_server(handler_timeout=5.0)  # the timeout must not reorder them either
    await publish(server.sx, "r", (1, 2, 3))
    frames: list[str] = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("message", lambda message: frames.append(f"message {message['data']['n']}"))
    try:
        await sio.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=["websocket"])
        answered = asyncio.get_running_loop().create_future()
        await sio.emit("message", {"meta": {"type": "sx_join", "id": "j1"}, "data": {"room": "r"}},
                       callback=lambda reply: (frames.append("answer"), answered.set_result(reply)))
        reply = await asyncio.wait_for(answered, 5)
        while len(frames) < 4:
            await asyncio.sleep(0.01)
        assert frames == ["answer", "message 1", "message 2", "message 3"]
        assert reply["data"]["replayed"] == 3 and reply["data"]["until"] == 3
    finally:
        await sio.disconnect()


async def test_join_returns_with_the_replay_handled(start_server, make_client):
    server = await start_server()
    await publish(server.sx, "r", range(1, 201))
    client, got = make_client(server.url), []

    async def slow(data):
        await asyncio.sleep(0)
        got.append(data["n"])

    client.on_message("n", slow)
    await client.connect("t")
    answer = await client.join("r")
    assert answer["replayed"] == 200 and got == list(range(1, 201))
