"""Rooms: live delivery, leave, the Shotx backlog, resume with since, retention."""

import asyncio

import pytest

from shotx.client import SxClient


def collect(client, into, type_="notification"):
    client.on_message(type_, lambda data, meta: into.append(data["n"]))


async def publish(sx, room, numbers):
    """Room sends of ``{"n": n}``, one after another."""
    for n in numbers:
        await sx.to(room).send("notification", {"n": n})


async def test_join_receive_leave_then_nothing(start_server, make_client, wait_until):
    server = await start_server()
    client = make_client(server.url)
    got = []
    collect(client, got)
    await client.connect("t")
    answer = await client.join("user-room")
    epoch = answer.pop("epoch")
    assert answer == {"room": "user-room", "since": None, "head": 0, "replayed": 0, "missed": 0,
                      "after": 0, "until": 0}
    assert isinstance(epoch, str)
    await server.sx.to("user-room").send("notification", {"n": 1})
    await wait_until(lambda: got == [1])
    await client.leave("user-room")
    await server.sx.to("user-room").send("notification", {"n": 2})
    await asyncio.sleep(0.2)
    assert got == [1]


async def test_shotx_backlog_reaches_a_recreated_client(start_server, make_client, wait_until):
    """Messages 1..5 sent while the room is empty all reach the next joiner, once."""
    server = await start_server()
    first = make_client(server.url)
    await first.connect("t")
    await first.join("user-room")
    await first.close()
    await publish(server.sx, "user-room", range(1, 6))
    again, got = make_client(server.url), []
    collect(again, got)
    await again.connect("t")
    answer = await again.join("user-room")
    assert got == [1, 2, 3, 4, 5] and answer["replayed"] == 5
    third, more = make_client(server.url), []
    collect(third, more)
    await third.connect("t")
    await third.join("user-room")
    assert more == []  # the backlog went to one joiner, as in Shotx


async def test_offline_member_gets_exactly_what_it_missed(start_server, make_client, tmp_path, wait_until):
    server = await start_server()
    online, online_got = make_client(server.url), []
    collect(online, online_got)
    await online.connect("t")
    await online.join("news")
    path = tmp_path / "member.sqlite3"
    member, member_got = SxClient(server.url, store=path), []
    collect(member, member_got)
    await member.connect("t")
    await member.join("news")
    await publish(server.sx, "news", range(1, 4))
    await wait_until(lambda: member_got == [1, 2, 3])
    await member.close()  # offline while `online` stays
    await publish(server.sx, "news", range(4, 11))
    await wait_until(lambda: online_got == list(range(1, 11)))

    back, back_got = SxClient(server.url, store=path), []
    collect(back, back_got)
    try:
        await back.connect("t")
        await wait_until(lambda: back_got == list(range(4, 11)))
        await server.sx.to("news").send("notification", {"n": 11})
        await wait_until(lambda: back_got == list(range(4, 12)))
        await asyncio.sleep(0.1)
        assert back_got == list(range(4, 12)) and back.rooms.offsets["news"] == 11
    finally:
        await back.close()


async def test_reconnect_rejoins_with_since_after_the_server_drops_us(start_server, make_client, wait_until):
    server = await start_server()
    client, got = make_client(server.url), []
    collect(client, got)
    await client.connect("t")
    await client.join("r")
    await server.sx.to("r").send("notification", {"n": 1})
    await wait_until(lambda: got == [1])
    for sid in list(server.sx.sockets):
        await server.sx.sio.disconnect(sid)
    await wait_until(lambda: not client.is_connected, timeout=2)
    await server.sx.to("r").send("notification", {"n": 2})  # nobody is in the room now
    await wait_until(lambda: got == [1, 2])
    await server.sx.to("r").send("notification", {"n": 3})
    await wait_until(lambda: got == [1, 2, 3])


async def test_retention_by_count_and_the_join_answer_says_what_was_missed(start_server, make_client, wait_until):
    server = await start_server(retention_max_messages=3)
    client, got = make_client(server.url), []
    collect(client, got)
    await client.connect("t")
    await client.join("r")
    await server.sx.to("r").send("notification", {"n": 1})
    await asyncio.sleep(0.1)
    await client.disconnect()
    await publish(server.sx, "r", range(2, 11))
    await client.connect("t")  # rejoins "r" with since=1
    answer = client.join_answers["r"]
    assert answer["since"] == 1 and answer["head"] == 10 and answer["missed"] == 6 and answer["replayed"] == 3
    await wait_until(lambda: len(got) >= 4)  # a rejoin's replay follows its answer (connect() does not wait for it)
    assert got == [1, 8, 9, 10]


async def test_retention_by_age(start_server, make_client):
    server = await start_server(retention_max_age=60.0)
    await publish(server.sx, "old", range(3))
    assert await server.sx.apply_retention() == 0
    assert await server.sx.apply_retention(now=server.sx.store._logs["old"][-1].ts + 61) == 3
    client, got = make_client(server.url), []
    collect(client, got)
    await client.connect("t")
    answer = await client.join("old")
    assert got == [] and answer["missed"] == 3 and answer["head"] == 2 + 1


async def test_bad_rooms_and_since_are_refused_clearly(start_server, make_client, raw_client):
    server = await start_server()
    client = make_client(server.url)
    for bad in ("", None, 5):
        with pytest.raises(ValueError, match="room"):
            await client.join(bad)
    assert client.rooms.offsets == {}
    sio = await raw_client(server.url)
    for data, text in (({"room": ""}, "room"), ({"room": 3}, "room"), ("r", "room"),
                       ({"room": "r", "since": -1}, "since"), ({"room": "r", "since": "3"}, "since"),
                       ({"room": "r", "since": 1.5}, "since")):
        reply = await sio.call("message", {"meta": {"type": "sx_join"}, "data": data}, timeout=5)
        assert reply["meta"]["success"] is False and reply["meta"]["code"] == 2004
        assert text in reply["meta"]["error"]
    with pytest.raises(ValueError):
        await server.sx.to("").send("x", 1)
    with pytest.raises(TypeError):
        await server.sx.to("r").send("x", {"bad": object()})
    with pytest.raises(ValueError):  # JavaScript's JSON.parse would choke on NaN
        await server.sx.to("r").send("x", {"bad": float("nan")})
    assert (await server.sx.store.bounds("r")).head == 0


@pytest.mark.parametrize("manager", ["default", "subclass"])
async def test_live_and_replayed_messages_are_the_same_on_both_delivery_paths(
        start_server, make_client, wait_until, manager):
    """Frames written by SxServer itself and python-socketio's emit (used with any
    other client manager) carry the same messages; later edits of the sent dict change nothing."""
    import socketio

    class OtherManager(socketio.AsyncManager):
        pass

    options = {} if manager == "default" else {"client_manager": OtherManager()}
    server = await start_server(**options)
    assert server.sx.room_messages.writes_frames is (manager == "default")
    data = {"n": 1, "text": "é \"quoted\"", "list": [1, None, 2.5]}
    await server.sx.to("paths").send("notification", data)  # replayed on join
    data["list"].append("edited")
    client, got = make_client(server.url), []
    client.on_message("notification", lambda data, meta: got.append((data, meta)))
    await client.connect("t")
    await client.join("paths")
    await server.sx.to("paths").send("notification", {**data, "n": 2})  # live
    await wait_until(lambda: len(got) == 2)
    assert [d for d, _ in got] == [{"n": 1, "text": "é \"quoted\"", "list": [1, None, 2.5]},
                                   {**data, "n": 2}]
    assert [(m["type"], m["room"], m["offset"]) for _, m in got] == [("notification", "paths", 1),
                                                                     ("notification", "paths", 2)]


async def test_replay_and_live_sends_interleave_without_gaps_or_duplicates(start_server, make_client, wait_until):
    server = await start_server()
    await publish(server.sx, "busy", range(1, 201))
    client, got = make_client(server.url), []
    collect(client, got)
    await client.connect("t")

    await asyncio.gather(client.join("busy"), publish(server.sx, "busy", range(201, 401)))
    await wait_until(lambda: len(got) >= 400)
    await asyncio.sleep(0.1)
    assert got == list(range(1, 401))


async def test_concurrent_sends_to_one_room_share_commits_and_arrive_in_offset_order(
        start_server, make_client, wait_until, tmp_path):
    server = await start_server(store=str(tmp_path / "rooms.sqlite3"))
    commits, commit = [], server.sx.store.commits.commit

    def counted():
        commits.append(len(server.sx.store.commits.pending))
        commit()

    server.sx.store.commits.commit = counted
    client, got = make_client(server.url), []
    client.on_message("notification", lambda data, meta: got.append((meta["offset"], data["n"])))
    await client.connect("t")
    await client.join("crowd")
    sent = await asyncio.gather(*(server.sx.to("crowd").send("notification", {"n": n}) for n in range(200)))
    assert [reply["offset"] for reply in sent] == list(range(1, 201))  # offsets in call order
    await wait_until(lambda: len(got) == 200)
    assert got == [(n + 1, n) for n in range(200)]  # live, in offset order
    assert len(commits) < 20, commits  # 200 sends, a handful of group commits
    assert server.sx.delivery_order.busy == 0 and server.sx.room_locks.held == 0


async def test_a_send_cancelled_while_committing_still_goes_out_live_in_its_turn(
        start_server, make_client, wait_until, tmp_path):
    server = await start_server(store=str(tmp_path / "cancel.sqlite3"))
    client, got = make_client(server.url), []
    client.on_message("notification", lambda data, meta: got.append((meta["offset"], data["n"])))
    await client.connect("t")
    await client.join("r")
    first = asyncio.ensure_future(server.sx.to("r").send("notification", {"n": 1}))
    await asyncio.sleep(0)  # it has appended and now awaits its commit
    first.cancel()
    second = await server.sx.to("r").send("notification", {"n": 2})
    await wait_until(lambda: len(got) == 2)
    assert got == [(1, 1), (2, 2)] and second["offset"] == 2 and first.cancelled()
    assert server.sx.delivery_order.busy == 0


async def test_a_server_whose_log_restarted_is_followed_from_its_head(start_server, make_client, wait_until):
    """A memory-store server restarts empty: the rejoin (since 3) finds head 0, and
    the client takes the server's new offsets instead of dropping 1..3 as seen."""
    first = await start_server()
    client, got = make_client(first.url), []
    collect(client, got)
    await client.connect("t")
    await client.join("news")
    await publish(first.sx, "news", range(1, 4))
    await wait_until(lambda: got == [1, 2, 3])
    port = first.port
    await first.stop()
    second = await start_server(port=port)
    await wait_until(lambda: client.join_answers.get("news", {}).get("head") == 0 and client.rooms.offsets["news"] == 0)
    await publish(second.sx, "news", range(4, 6))
    await wait_until(lambda: got == [1, 2, 3, 4, 5])
