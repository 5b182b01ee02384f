"""Rooms only the right people can read: authorize_join, refusals, room names.

Hole: with a durable log, any authenticated client could join any room with
``since: 0`` and read its whole retained history."""

from __future__ import annotations

import logging
import re

import pytest

from shotx.client import JoinRefused, MessageError, protocol


def private_user_rooms(sx, calls):
    sx.set_auth_handler(lambda token, socket: {"user": token})

    @sx.authorize_join
    async def own_rooms_only(room, socket, since):
        calls.append((room, socket.auth["user"], since))
        return not room.startswith("user-") or room == f"user-{socket.auth['user']}"


async def test_a_refused_join_joins_nothing_replays_nothing_and_says_2006(start_server, raw_client):
    calls = []
    server = await start_server(lambda sx: private_user_rooms(sx, calls))
    await server.sx.to("user-alice").send("n", {"secret": 1})
    mallory = await raw_client(server.url, token="mallory")
    got = []
    mallory.on("message", got.append)
    reply = await mallory.call("message", protocol.request("sx_join", {"room": "user-alice", "since": 0}), timeout=5)
    assert reply == {"meta": {"success": False, "code": 2006, "error": "Join refused: user-alice"}, "data": None}
    assert not server.sx.has_members("user-alice") and got == []
    assert calls == [("user-alice", "mallory", 0)]
    ok = await mallory.call("message", protocol.request("sx_join", {"room": "lobby"}), timeout=5)
    assert ok["meta"]["success"] is True and server.sx.has_members("lobby")


async def test_the_client_raises_join_refused_and_does_not_rejoin_after_reconnects(start_server, make_client,
                                                                                  wait_until, caplog):
    calls = []
    server = await start_server(lambda sx: private_user_rooms(sx, calls))
    client = make_client(server.url)
    await client.connect("bob")
    await client.join("user-bob")
    with pytest.raises(JoinRefused) as refused, caplog.at_level(logging.WARNING, "shotx.client"):
        await client.join("user-alice")
    assert refused.value.code == protocol.JOIN_REFUSED and isinstance(refused.value, MessageError)
    assert "user-alice" not in client.rooms.offsets
    assert "user-alice" not in (await client.store.load()).rooms
    assert [r.message for r in caplog.records].count(
        "join user-alice refused by the server: the room is forgotten and not rejoined") == 1
    await server.sx.sio.disconnect(next(iter(server.sx.sockets)))  # the server drops us: we reconnect
    await wait_until(lambda: calls.count(("user-bob", "bob", 0)) == 1)  # rejoined with its position
    assert [room for room, _, _ in calls].count("user-alice") == 1  # and never asked for alice's again


async def test_an_authorizer_that_raises_answers_2004_and_the_client_retries(start_server, make_client, wait_until):
    failures = [RuntimeError("directory down")]

    def setup(sx):
        def authorize(room, socket, since):
            if failures:
                raise failures.pop()
            return True
        sx.authorize_join(authorize)

    server = await start_server(setup)
    client = make_client(server.url)
    await client.connect("t")
    with pytest.raises(MessageError) as failed:
        await client.join("r")
    assert failed.value.code == protocol.HANDLER_ERROR and not isinstance(failed.value, JoinRefused)
    await wait_until(lambda: server.sx.has_members("r"))  # retried with backoff, then let in


async def test_a_join_without_authentication_is_refused(start_server):
    import socketio

    server = await start_server()
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=["websocket"])
    try:
        server.sx.sockets.clear()  # as if authentication had not happened for this socket
        reply = await sio.call("message", protocol.request("sx_join", {"room": "r"}), timeout=5)
        assert reply["meta"] == {"success": False, "code": 2006, "error": "Not authenticated"}
        assert not server.sx.has_members("r")
    finally:
        await sio.disconnect()


@pytest.mark.parametrize("room, error", [
    ("", "must be a non-empty string"), (7, "must be a non-empty string"), (None, "must be a non-empty string"),
    ("x" * 257, "257 characters, at most 256"), ("a\nb", "control character U+000A"),
    ("tab\there", "control character U+0009"), ("c\x85", "control character U+0085"),
    ("half\ud800", "lone UTF-16 surrogate"),
])
async def test_room_names_are_checked_with_clear_errors_on_both_ends(start_server, make_client, raw_client,
                                                                    room, error, caplog):
    server = await start_server()
    client = make_client(server.url)
    await client.connect("t")
    with pytest.raises(ValueError, match=re.escape(error)):
        await client.join(room)
    sio = await raw_client(server.url)
    with caplog.at_level(logging.INFO, "shotx.server"):
        reply = await sio.call("message", protocol.request("sx_join", {"room": room}), timeout=5)
    assert reply["meta"]["success"] is False and reply["meta"]["code"] == protocol.HANDLER_ERROR
    assert error in reply["meta"]["error"]
    assert not [r for r in caplog.records if r.exc_info], "an expected refusal logs one line, no traceback"
    assert (await client.join("x" * 256))["room"] == "x" * 256  # the longest name there is still works
