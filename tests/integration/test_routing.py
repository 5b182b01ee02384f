"""Typed routes answered through acks, with every Shotx error code."""

import asyncio

import pytest
import socketio
from aiohttp import web

from shotx.client import MessageError
from shotx.server import SxServer
from shotx.server.server import FRAME_HEADROOM


def routes(sx):
    @sx.on_message("test_route")
    async def test_route(data, socket):
        return {"echo": data, "status": "ok"}

    @sx.on_message("error_route")
    async def error_route(data, socket):
        raise ValueError("Handler exploded")

    sx.on_message("sync_route", lambda data, socket: {"sync": data})
    sx.on_message("meta_route", lambda data, socket, meta: {"type": meta["type"], "id": meta["id"]})
    sx.on_message("bad_result", lambda data, socket: {"x": object()})
    sx.on_message("nan_result", lambda data, socket: {"x": float("nan")})  # JavaScript's JSON.parse refuses NaN
    sx.on_message("silent_error", lambda data, socket: 1 / 0 if data else None)


async def test_route_returns_handler_result(start_server, make_client):
    client = make_client((await start_server(routes)).url)
    await client.connect("t")
    assert await client.send("test_route", {"hello": "world"}) == {"echo": {"hello": "world"}, "status": "ok"}
    for i in range(5):
        assert (await client.send("test_route", {"count": i}))["echo"]["count"] == i


async def test_unknown_type_is_2003(start_server, make_client):
    client = make_client((await start_server(routes)).url)
    await client.connect("t")
    with pytest.raises(MessageError) as caught:
        await client.send("nonexistent_route", {})
    assert caught.value.code == 2003 and str(caught.value) == "Unknown message type: nonexistent_route"


async def test_raising_handler_is_2004_with_its_text(start_server, make_client):
    client = make_client((await start_server(routes)).url)
    await client.connect("t")
    with pytest.raises(MessageError) as caught:
        await client.send("error_route", {})
    assert caught.value.code == 2004 and "Handler exploded" in str(caught.value)
    with pytest.raises(MessageError) as caught:
        await client.send("silent_error", 1)
    assert caught.value.code == 2004 and "division by zero" in str(caught.value)
    assert await client.send("test_route", 1) == {"echo": 1, "status": "ok"}  # the connection survives


async def test_sync_handlers_and_meta_argument(start_server, make_client):
    client = make_client((await start_server(routes)).url)
    await client.connect("t")
    assert await client.send("sync_route", [1, 2]) == {"sync": [1, 2]}
    answer = await client.send("meta_route", None)
    assert answer["type"] == "meta_route" and len(answer["id"]) == 36


async def test_result_json_cannot_carry_is_2004(start_server, make_client):
    client = make_client((await start_server(routes)).url)
    await client.connect("t")
    with pytest.raises(MessageError) as caught:
        await client.send("bad_result")
    assert caught.value.code == 2004
    with pytest.raises(MessageError) as caught:
        await client.send("nan_result")
    assert caught.value.code == 2004 and "JSON" in str(caught.value)


async def test_replies_through_a_serializer_of_the_users_choosing(start_server, make_client):
    """Pre-encoded replies go only through SxServer's own packet class; any other gets values."""
    server = await start_server(routes, serializer=socketio.packet.Packet)
    assert server.sx.sio.packet_class is socketio.packet.Packet
    client = make_client(server.url)
    await client.connect("t")
    assert await client.send("test_route", {"a": [1, "é"]}) == {"echo": {"a": [1, "é"]}, "status": "ok"}
    with pytest.raises(MessageError) as caught:
        await client.send("error_route")
    assert caught.value.code == 2004


async def test_raw_malformed_messages_get_2001_and_2002(start_server, raw_client):
    sio = await raw_client((await start_server(routes)).url)
    for bad in ("not-an-object", 42, [1, 2], None):
        reply = await sio.call("message", bad, timeout=5)
        assert reply == {"meta": {"success": False, "code": 2001, "error": "Invalid message format"}, "data": None}
    for meta in ({}, {"type": 7}, None, "x"):
        reply = await sio.call("message", {"meta": meta, "data": 1}, timeout=5)
        assert reply["meta"] == {"success": False, "code": 2002, "error": "Invalid message type"}
    reply = await sio.call("message", {"meta": {"type": "test_route"}, "data": "no id"}, timeout=5)
    assert reply == {"meta": {"success": True}, "data": {"echo": "no id", "status": "ok"}}


async def test_message_without_ack_still_runs_its_handler(start_server, raw_client, wait_until):
    handled = []

    def setup(sx):
        sx.on_message("no_ack_route", lambda data, socket: handled.append(data))
        routes(sx)

    sio = await raw_client((await start_server(setup)).url)
    await sio.emit("message", {"meta": {"type": "no_ack_route"}, "data": {"hello": "no-ack"}})
    await sio.emit("message", "not-an-object")
    await wait_until(lambda: handled == [{"hello": "no-ack"}])
    assert (await sio.call("message", {"meta": {"type": "test_route"}, "data": 1}, timeout=5))["meta"]["success"]


async def test_hanging_handler_times_out_on_the_server(start_server, make_client):
    def setup(sx):
        sx.on_message("hang", lambda data, socket: asyncio.sleep(60))
        routes(sx)

    client = make_client((await start_server(setup, handler_timeout=0.2)).url)
    await client.connect("t")
    with pytest.raises(MessageError) as caught:
        await client.send("hang", timeout=5)
    assert caught.value.code == 2004 and "timed out" in str(caught.value)
    assert await client.send("test_route", 2) == {"echo": 2, "status": "ok"}


def test_constructor_validation_and_chaining():
    with pytest.raises(TypeError, match="aiohttp web.Application"):
        SxServer(None)
    with pytest.raises(ValueError, match="retention_max_messages"):
        SxServer(web.Application(), store="memory", retention_max_messages=0)
    sx = SxServer(web.Application(), store="memory")
    assert sx.path == "/shotx/"
    handler = lambda data, socket: None  # noqa: E731
    assert sx.on_message("a", handler).on_message("b", handler) is sx
    assert sx.set_auth_handler(lambda t, s: {}) is sx
    with pytest.raises(TypeError, match="Invalid parameters"):
        sx.on_message(123, handler)
    with pytest.raises(TypeError, match="Invalid parameters"):
        sx.on_message("route", "not a function")
    with pytest.raises(TypeError, match="must be a function"):
        sx.set_auth_handler("nope")
    with pytest.raises(ValueError, match="room"):
        sx.to("")
    assert sx.sio.eio.max_http_buffer_size == 2 * 1024 * 1024 + FRAME_HEADROOM  # the payload limit plus its framing


async def test_oversized_raw_message_drops_only_that_connection(start_server, make_client, raw_client, wait_until):
    server = await start_server(routes)
    client = make_client(server.url)
    await client.connect("t")
    sio = await raw_client(server.url)
    await sio.emit("message", {"meta": {"type": "test_route"}, "data": "x" * (3 * 1024 * 1024)})
    await wait_until(lambda: not sio.connected, timeout=5)
    assert await client.send("test_route", "still here") == {"echo": "still here", "status": "ok"}


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_replies_carry_any_unicode_on_either_transport(start_server, transport):
    """Replies leave as JSON text SxServer encoded itself (not ASCII-escaped): both transports must carry it."""
    server = await start_server(routes)
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=[transport])
    try:
        text = "héllo ✓ 👋 \u2028 \"quoted\" \\ back"
        reply = await sio.call("message", {"meta": {"type": "test_route", "id": "u-1"}, "data": text}, timeout=5)
        assert reply == {"meta": {"success": True}, "data": {"echo": text, "status": "ok"}}
    finally:
        if transport == "polling":  # else python-socketio's polling client waits out its long-poll (~30 s)
            await server.stop()
        await sio.disconnect()
