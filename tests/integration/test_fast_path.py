"""The WebSocket fast path (server/engineio_sockets.py) on a real server over real sockets.

Frames go straight to the WebSocket when nothing is queued, through
engine.io's queue otherwise; permessage-deflate declined, as Node's engine.io
declines it, unless ``websocket_compression=True``.
What must not change: every member gets every room message once, in order,
even while another member has stopped reading; the upgrade from
long-polling still works.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import socketio

from shotx.server.engineio_sockets import DirectSocket

ENGINEIO_WS = "/shotx/?EIO=4&transport=websocket"


async def raw_member(http: aiohttp.ClientSession, url: str, **options: Any) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket that has done the Engine.IO and Socket.IO handshakes (and read auth_success)."""
    ws = await http.ws_connect(url.replace("http", "ws") + ENGINEIO_WS, **options)
    assert (await ws.receive_str()).startswith("0")  # engine.io open
    await ws.send_str('40{"token":"valid"}')
    assert (await ws.receive_str()).startswith("40")  # socket.io connect
    assert (await ws.receive_str()).startswith('42["auth_success"')
    return ws


async def offsets_read(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[int]:
    """The room offsets of the next ``count`` room messages (answering engine.io pings)."""
    offsets: list[int] = []
    while len(offsets) < count:
        text = await ws.receive_str()
        if text == "2":
            await ws.send_str("3")
        elif text.startswith('42["message"'):
            offsets.append(json.loads(text[2:])[1]["meta"]["offset"])
    return offsets


async def test_compression_off_by_default_as_in_node(start_server):
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url, compress=15)  # offers permessage-deflate
        assert ws.compress == 0
        await ws.close()


async def test_compression_when_asked_for_and_compressed_frames_stay_in_order(start_server):
    """Frames past aiohttp's 16 KiB are compressed in its executor (the write waits);
    those after them must not overtake them (compressed frames go through engine.io's writer)."""
    server = await start_server(websocket_compression=True)
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url, compress=15)
        assert ws.compress == 15
        assert not next(iter(server.sx.sio.eio.sockets.values())).may_write_now()
        sid = next(iter(server.sx.sockets))
        await server.sx.sio.enter_room(sid, "zipped")
        for n in range(60):
            await server.sx.to("zipped").send("n", {"n": n, "pad": "z" * (n % 3 * 20_000)})
        assert await offsets_read(ws, 60) == list(range(1, 61))
        await ws.close()


async def test_an_idle_socket_is_written_directly(start_server):
    """Once connected, a WebSocket's frames skip engine.io's queue and writer."""
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url)
        socket = next(iter(server.sx.sio.eio.sockets.values()))
        assert isinstance(socket, DirectSocket) and socket.may_write_now()
        await server.sx.sio.enter_room(next(iter(server.sx.sockets)), "direct")
        await server.sx.to("direct").send("n", 1)
        assert socket.queue.empty()
        assert await offsets_read(ws, 1) == [1]
        await ws.close()


async def test_a_member_that_stopped_reading_holds_up_nobody_and_gets_everything_in_order(start_server, wait_until):
    """The stuck member's frames queue up behind the one whose drain it never allows;
    the sends, and the live member, go on meanwhile; once it reads again, it gets
    every message once, in order (frames written directly and from the queue)."""
    server = await start_server()
    sx = server.sx
    big = "x" * 1_000_000
    async with aiohttp.ClientSession() as http:
        stuck = await raw_member(http, server.url, max_msg_size=0)
        await sx.sio.enter_room(next(iter(sx.sockets)), "jam")
        live = await raw_member(http, server.url, max_msg_size=0)
        await sx.sio.enter_room(next(sid for sid in sx.sockets if sid not in sx.sio.manager.rooms["/"]["jam"]),
                                "jam")
        live_offsets = asyncio.ensure_future(offsets_read(live, 60))
        for n in range(30):  # 30 MB: far past what loopback buffers hold for the stuck member
            await asyncio.wait_for(sx.to("jam").send("big", big), 10)
        stuck_socket = next(s for s in sx.sio.eio.sockets.values() if not s.may_write_now())
        assert not stuck_socket.queue.empty(), "the stuck member's frames should be queued by now"
        for n in range(30):
            await asyncio.wait_for(sx.to("jam").send("small", n), 10)
        assert await asyncio.wait_for(live_offsets, 30) == list(range(1, 61))
        assert await asyncio.wait_for(offsets_read(stuck, 60), 30) == list(range(1, 61))
        await stuck.close()
        await live.close()


async def test_the_upgrade_from_long_polling_still_works(start_server, wait_until):
    server = await start_server()
    client = socketio.AsyncClient(reconnection=False)
    got: list[Any] = []
    client.on("message", got.append)
    try:
        await client.connect(server.url, auth={"token": "valid"}, socketio_path="shotx",
                             transports=["polling", "websocket"])
        await wait_until(lambda: client.transport() == "websocket")
        reply = await client.call("message", {"meta": {"type": "sx_join", "id": "j1"}, "data": {"room": "up"}})
        assert reply["meta"]["success"], reply
        socket = next(iter(server.sx.sio.eio.sockets.values()))
        await wait_until(socket.may_write_now)
        await server.sx.to("up").send("n", 7)
        await wait_until(lambda: len(got) == 1)
        assert got[0]["data"] == 7 and got[0]["meta"]["offset"] == 1
    finally:
        await client.disconnect()


async def test_a_silent_connection_is_closed_after_ping_interval_and_timeout_a_talking_one_is_not(start_server):
    """engine.io ended a read that waited ``ping_interval + ping_timeout``; ours keeps one timer per
    connection instead of one per frame (engineio_sockets._Silence): a client that stops sending
    (no pong, no frame: a dropped network) gets its WebSocket closed, not only a CLOSE packet, and
    one that keeps talking past that time is left alone."""
    server = await start_server(ping_interval=0.3, ping_timeout=0.3)
    async with aiohttp.ClientSession() as http:
        talking, silent = await raw_member(http, server.url), await raw_member(http, server.url)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def talk() -> None:  # answers every ping, and sends a frame every 0.1 s meanwhile
            while loop.time() - started < 2.0:
                try:
                    text = await talking.receive_str(timeout=0.1)
                except asyncio.TimeoutError:
                    await talking.send_str('42["ping_me"]')  # an event nobody acks: a frame, no reply
                    continue
                if text == "2":
                    await talking.send_str("3")

        async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> float:
            while True:
                message = await ws.receive()
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return loop.time() - started

        closed_after, _ = await asyncio.wait_for(asyncio.gather(until_closed(silent), talk()), 10)
        assert 0.6 <= closed_after < 3.0, closed_after  # no frame for 0.6 s: closed (not before)
        assert not talking.closed, "a connection that kept sending frames was cut"
        await talking.close()


async def test_a_message_handler_registered_over_ours_is_dispatched_by_python_socketio(start_server):
    """The reader's shortcut to SxServer's ``message`` handler (start_events_eagerly's ``direct``)
    holds only while that handler is the one registered: an application's own takes python-socketio's path."""
    server = await start_server()

    async def own(sid: str, data: Any) -> tuple[str, int]:
        return "mine", data

    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url)
        await ws.send_str('421["message",{"meta":{"type":"test_route","id":"a"},"data":1}]')
        ours = await asyncio.wait_for(ws.receive_str(), 5)
        server.sx.sio.on("message", own)
        await ws.send_str('422["message",5]')
        theirs = await asyncio.wait_for(ws.receive_str(), 5)
        await ws.close()
    assert ours.startswith("431[") and json.loads(ours[3:])[0]["meta"]["code"] == 2003, ours  # no test_route here
    assert theirs == '432["mine",5]', theirs


async def test_a_burst_of_room_messages_reaches_each_member_in_two_writes_in_order(start_server):
    """Room messages delivered in one loop turn: each member's first frame is written at once,
    the rest of the turn's frames in one write at its end (DirectSocket.write_text_frame's
    ``gather``); the ack of the send that made them comes after them."""
    writes: list[bytes] = []

    def setup(sx: Any) -> None:
        @sx.on_message("burst")
        async def burst(data: Any, socket: Any) -> str:
            await asyncio.gather(*(sx.to("burst").send("n", n) for n in range(data)))
            return "sent"

    server = await start_server(setup)
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url)
        socket = next(iter(server.sx.sio.eio.sockets.values()))
        await server.sx.sio.enter_room(next(iter(server.sx.sockets)), "burst")
        transport = socket._transport  # counted on the real transport, then passed on
        real_write = transport.write
        socket._transport = type("Counting", (), {
            "write": lambda self, data: (writes.append(bytes(data)), real_write(data))[1],
            "__getattr__": lambda self, name: getattr(transport, name)})()
        await ws.send_str('421["message",{"meta":{"type":"burst","id":"b1"},"data":12}]')
        frames: list[str] = []
        while not frames or not frames[-1].startswith("431"):
            text = await asyncio.wait_for(ws.receive_str(), 10)
            if text != "2":
                frames.append(text)
        await ws.close()
    offsets = [json.loads(text[2:])[1]["meta"]["offset"] for text in frames[:-1]]
    assert offsets == list(range(1, 13)), frames
    assert json.loads(frames[-1][3:])[0]["data"] == "sent"
    assert len(writes) == 3, [len(data) for data in writes]  # 1 frame, then 11 frames, then the ack
    assert writes[1].count(b'42["message"') == 11 and writes[2].endswith(b'431[{"meta":{"success":true},"data":"sent"}]')


async def test_whatever_is_written_to_a_socket_while_frames_are_gathered_goes_after_them(start_server):
    """Gathered frames wait for the turn's end; a frame written to the same socket meanwhile
    (an ack, a ping, a large frame through aiohttp's writer, a queued packet) must not overtake them."""
    from engineio import packet

    from shotx.server.engineio_sockets import text_frame

    server = await start_server()
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url)
        socket = next(iter(server.sx.sio.eio.sockets.values()))
        frame = lambda n: f'42["message",{{"n":{n}}}]'.encode()  # noqa: E731
        # one loop turn, no await in between:
        socket.write_text_frame(frame(1), text_frame(frame(1)), gather=True)  # written at once
        socket.write_text_frame(frame(2), text_frame(frame(2)), gather=True)  # gathered
        socket.write_now('431["ack"]')  # an ack: joins the gathered frames
        socket.write_now('42["message",{"n":3,"pad":"' + "p" * 20_000 + '"}]')  # large: aiohttp's write
        socket.write_text_frame(frame(4), text_frame(frame(4)), gather=True)
        await socket.send(packet.Packet(packet.PING))
        socket.write_text_frame(frame(5), text_frame(frame(5)), gather=True)
        socket.queue.put_nowait(packet.Packet(packet.MESSAGE, '2["message",{"n":6}]'))  # the writer's
        received = [await asyncio.wait_for(ws.receive_str(), 10) for _ in range(8)]
        await ws.close()
    names = [("ping" if text == "2" else "ack" if text.startswith("431") else json.loads(text[2:])[1]["n"])
             for text in received]
    assert names == [1, 2, "ack", 3, 4, "ping", 5, 6], names


@pytest.mark.parametrize("transport", ["websocket", "polling"])
@pytest.mark.parametrize("auth_data", [{"name": "é", "n": 1}, {"raw": b"\x00\xff"}], ids=["text", "bytes"])
async def test_auth_success_comes_right_after_connect_with_the_auth_data(start_server, transport, auth_data):
    """Written straight to the WebSocket as JSON text, else (polling, bytes in the data)
    sent by python-socketio as before; either way after CONNECT, with the data intact."""
    def setup(sx):
        @sx.auth
        def check(token, socket):
            return auth_data

    server = await start_server(setup)
    sio = socketio.AsyncClient(reconnection=False)
    seen: list[Any] = []
    got = asyncio.get_running_loop().create_future()
    sio.on("connect", lambda: seen.append("connect"))
    sio.on("auth_success", lambda data: seen.append(data) or got.done() or got.set_result(None))
    await sio.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=[transport])
    try:
        await asyncio.wait_for(got, 5)
        assert seen == ["connect", auth_data]
    finally:
        await sio.disconnect()


async def test_auth_success_is_one_text_frame_as_shotx_sends_it(start_server):
    def setup(sx):
        @sx.auth
        def check(token, socket):
            return {"name": "é"}

    server = await start_server(setup)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url.replace("http", "ws") + ENGINEIO_WS)
        assert (await ws.receive_str()).startswith("0")
        await ws.send_str('40{"token":"valid"}')
        assert (await ws.receive_str()).startswith("40")
        assert await ws.receive_str() == '42["auth_success",{"name":"é"}]'
        await ws.close()


async def test_a_text_frame_where_an_attachment_is_due_ends_the_connection_unanswered(start_server):
    """The reader hands event frames to python-socketio's dispatch itself, but not while a
    binary event awaits its attachments: then the frame is taken as the attachment, refused
    (text), and the connection closed, as python-socketio's own handling does."""
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url)
        await ws.send_str('451-7["message",{"meta":{"type":"test_route","id":"b1"},'
                          '"data":{"_placeholder":true,"num":0}}]')
        await ws.send_str('428["message",{"meta":{"type":"test_route","id":"t1"},"data":{}}]')
        frames = []
        while True:
            message = await asyncio.wait_for(ws.receive(), 5)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(message.data)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert not [frame for frame in frames if frame.startswith(("437", "438"))], frames


async def test_a_connection_the_server_ends_has_its_websocket_closed_after_the_close_packet(start_server):
    """An unanswerable frame (no ack id to answer it on) ends the connection. socket.io-client
    ignores a CLOSE packet on a WebSocket: unless the WebSocket closes too, a JavaScript
    client waits for its ping timeout (45 s) before it reconnects and sends again."""
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        ws = await raw_member(http, server.url)
        await ws.send_str("42not json")
        assert (await asyncio.wait_for(ws.receive(), 5)).data == "1"  # engine.io's CLOSE packet
        closed = await asyncio.wait_for(ws.receive(), 5)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
