"""python-engineio internals that server/engineio_sockets.py relies on.

If the pinned python-engineio changes them, this fails with a message that
says what to look at, instead of shutdown quietly leaving pages on dead sockets.
"""

import asyncio
import inspect

import engineio
from engineio import packet
from engineio.async_socket import AsyncSocket

SEAM = "server/engineio_sockets.py relies on it; see its docstring"


def test_close_takes_wait_and_abort():
    parameters = inspect.signature(AsyncSocket.close).parameters
    assert {"wait", "abort"} <= set(parameters), f"AsyncSocket.close lost wait/abort: {SEAM}"


def test_a_none_in_the_queue_ends_the_writer_after_what_was_queued_before_it():
    async def scenario():
        server = engineio.AsyncServer(async_mode="aiohttp")
        socket = AsyncSocket(server, "sid")
        assert isinstance(socket.queue, asyncio.Queue), f"AsyncSocket.queue is no asyncio.Queue: {SEAM}"
        socket.queue.put_nowait(packet.Packet(packet.CLOSE))
        socket.queue.put_nowait(None)
        first = await socket.poll()
        second = await socket.poll()
        return first, second

    first, second = asyncio.run(scenario())
    assert [p.packet_type for p in first] == [packet.CLOSE], f"poll() no longer returns the CLOSE packet: {SEAM}"
    assert second == [], f"poll() no longer returns [] for None (the writer's stop): {SEAM}"
    source = inspect.getsource(AsyncSocket._websocket_handler)
    assert "if not packets:" in source and "await ws.close()" in source, \
        f"the WebSocket writer no longer closes the WebSocket when poll() returns nothing: {SEAM}"


# ---- the WebSocket fast path (DirectSocket, use_direct_sockets, send_to_many) -----------------

PINNED = {"python-engineio": "4.15.1", "python-socketio": "5.18.1", "aiohttp": "3.14.5"}


def test_the_pinned_versions_are_the_ones_the_seam_was_written_against():
    from importlib.metadata import version
    found = {name: version(name) for name in PINNED}
    assert found == PINNED, (f"{found} installed, {PINNED} read: re-read python-engineio's AsyncSocket "
                             f"(send, _upgrade_websocket, _websocket_handler), its aiohttp driver and "
                             f"aiohttp's WebSocketWriter.send_frame against {SEAM}, then update PINNED")


def test_the_socket_attributes_and_methods_direct_socket_uses():
    server = engineio.AsyncServer(async_mode="aiohttp")
    socket = AsyncSocket(server, "sid")
    for name in ("queue", "connected", "upgraded", "upgrading", "closing", "closed", "last_ping"):
        assert hasattr(socket, name), f"AsyncSocket has no {name} any more: {SEAM}"
    assert list(inspect.signature(AsyncSocket._upgrade_websocket).parameters) == ["self", "environ"], SEAM
    assert list(inspect.signature(AsyncSocket.send).parameters) == ["self", "pkt"], SEAM
    assert "getattr(self, '_upgrade_' + transport)" in inspect.getsource(AsyncSocket.handle_get_request), \
        f"handle_get_request no longer calls _upgrade_<transport>: {SEAM}"
    for name in ("ping_interval", "ping_timeout", "max_http_buffer_size", "reason", "logger"):
        assert hasattr(server, name), f"engineio.AsyncServer has no {name}: {SEAM}"


def test_the_connect_event_comes_after_the_socket_exists_and_before_its_transport_starts():
    from engineio.async_server import AsyncServer
    source = inspect.getsource(AsyncServer._handle_connect)
    made, connect, transport = (source.index("self.sockets[sid] = s"),
                                source.index("self._trigger_event('connect'"),
                                source.index("s.handle_get_request(environ)"))
    assert made < connect < transport, f"use_direct_sockets swaps the class at 'connect': {SEAM}"


def test_python_socketio_handles_the_engineio_connect_event_through_eio_on():
    import socketio
    sio = socketio.AsyncServer(async_mode="aiohttp")
    assert sio.eio.handlers["connect"] == sio._handle_eio_connect, \
        f"python-socketio no longer registers its Engine.IO connect handler with eio.on: {SEAM}"


def test_aiohttp_puts_a_whole_uncompressed_frame_into_the_transport_before_it_waits_for_a_drain():
    from aiohttp import web
    from aiohttp._websocket.writer import WebSocketWriter
    source = inspect.getsource(WebSocketWriter.send_frame)
    assert source.index("self._write_websocket_frame(message, opcode, 0)") < source.index("_drain_helper()"), \
        f"a direct write that waits for a drain could be overtaken: {SEAM}"
    parameters = inspect.signature(web.WebSocketResponse).parameters
    assert {"compress", "max_msg_size"} <= set(parameters), SEAM
    assert list(inspect.signature(web.WebSocketResponse.send_frame).parameters)[:3] == \
        ["self", "message", "opcode"], SEAM


def test_the_event_handling_start_events_eagerly_replaces():
    import socketio
    from socketio.async_server import AsyncServer
    assert list(inspect.signature(AsyncServer._handle_event).parameters) == \
        ["self", "eio_sid", "namespace", "id", "data"], SEAM
    assert list(inspect.signature(AsyncServer._handle_event_internal).parameters) == \
        ["self", "server", "sid", "eio_sid", "data", "namespace", "id"], SEAM
    source = inspect.getsource(AsyncServer._handle_event)
    assert "self.start_background_task(\n                self._handle_event_internal" in source, \
        f"python-socketio's _handle_event changed: compare it with start_events_eagerly ({SEAM})"
    assert "await self._handle_event(eio_sid" in inspect.getsource(AsyncServer._handle_eio_message), SEAM
    assert socketio.AsyncServer(async_mode="aiohttp").async_handlers is True, SEAM


def test_the_engineio_message_handling_the_reader_does_itself_for_an_event():
    """DirectSocket._read makes an EVENT frame's packet and calls _handle_event itself, unless
    a binary packet of the socket awaits attachments (python-socketio's ``_binary_packet``)."""
    import socketio
    from socketio.async_server import AsyncServer
    source = inspect.getsource(AsyncServer._handle_eio_message)
    assert "if eio_sid in self._binary_packet:" in source, SEAM
    assert "pkt = self.packet_class(encoded_packet=data)" in source, SEAM
    assert "elif pkt.packet_type == packet.EVENT:\n                await self._handle_event(eio_sid, " \
           "pkt.namespace, pkt.id,\n                                         pkt.data)" in source, \
        f"python-socketio's _handle_eio_message handles an EVENT differently now: {SEAM}"
    sio = socketio.AsyncServer(async_mode="aiohttp")
    assert sio._binary_packet == {}, f"python-socketio keeps its binary packets elsewhere now: {SEAM}"


def test_session_ids_come_from_generate_id_in_engineio_and_socketio():
    """tag_session_ids replaces ``generate_id`` on the server: the handshake and
    python-socketio's namespace connect must both take their sids from it."""
    import socketio
    from socketio.base_manager import BaseManager

    from shotx.server.engineio_sockets import tag_session_ids

    server = engineio.AsyncServer(async_mode="aiohttp")
    tag_session_ids(server, 4)
    first, second = server.generate_id(), server.generate_id()
    assert first.startswith("4.") and second.startswith("4.") and first != second
    handshake = inspect.getsource(engineio.AsyncServer._handle_connect)
    assert "self.generate_id()" in handshake, f"engine.io's handshake no longer calls generate_id(): {SEAM}"
    assert "self.server.eio.generate_id()" in inspect.getsource(BaseManager.pre_connect), \
        f"python-socketio no longer takes namespace sids from eio.generate_id(): {SEAM}"
    assert socketio.AsyncServer(async_mode="aiohttp").eio.generate_id().count(".") == 0


# ---- closed sockets freed at once (issue 10 point 3) ---------------------------------------------

def test_the_ping_task_direct_socket_keeps_and_cancels_on_close():
    source = inspect.getsource(AsyncSocket.schedule_ping)
    assert "if self.last_ping:" in source and "self.server.start_background_task(self._send_ping)" in source, \
        f"AsyncSocket.schedule_ping changed: compare DirectSocket.schedule_ping ({SEAM})"
    assert inspect.getsource(AsyncSocket._send_ping).index("asyncio.sleep(self.server.ping_interval)") > 0, SEAM
    assert "return asyncio.ensure_future(" in inspect.getsource(engineio.AsyncServer.start_background_task), \
        f"start_background_task no longer returns the task DirectSocket cancels: {SEAM}"
    assert "s.schedule_ping()" in inspect.getsource(engineio.AsyncServer._handle_connect), SEAM


def test_the_service_task_use_direct_sockets_replaces():
    connect = inspect.getsource(engineio.AsyncServer._handle_connect)
    assert "self.start_background_task(\n                self._service_task)" in connect, \
        f"engine.io no longer starts self._service_task at the first connect: {SEAM}"
    shutdown = inspect.getsource(engineio.AsyncServer.shutdown)
    assert "self.service_task_event.set()" in shutdown and "await self.service_task_handle" in shutdown, SEAM
    service = inspect.getsource(engineio.AsyncServer._service_task)
    assert "for s in self.sockets.copy().values():" in service and "await s.check_ping_timeout()" in service, \
        f"engine.io's _service_task changed: compare engineio_sockets._service_task ({SEAM})"


def test_python_socketio_handles_the_engineio_disconnect_event_through_eio_on():
    import socketio
    sio = socketio.AsyncServer(async_mode="aiohttp")
    assert sio.eio.handlers["disconnect"] == sio._handle_eio_disconnect, SEAM
    assert list(inspect.signature(sio._handle_eio_disconnect).parameters) == ["eio_sid", "reason"], SEAM
    assert "'disconnect', self.sid," in inspect.getsource(AsyncSocket.close), SEAM


def test_a_pong_reaches_receive_and_only_restarts_a_ping_that_was_sent():
    """DirectSocket.round_trip counts PONGs in ``receive`` and sends its PING through ``send``
    without setting ``last_ping``: engine.io's PONG handling must then start no second ping loop."""
    async def scenario():
        server = engineio.AsyncServer(async_mode="aiohttp")
        socket = AsyncSocket(server, "sid")
        started = []
        server.start_background_task = lambda *args: started.append(args)
        socket.last_ping = None  # no ping of engine.io's own outstanding
        await socket.receive(packet.Packet(packet.PONG))
        quiet = list(started)
        socket.last_ping = 1.0  # one outstanding: its pong starts the next cycle
        await socket.receive(packet.Packet(packet.PONG))
        return quiet, started

    quiet, started = asyncio.run(scenario())
    assert quiet == [], f"a PONG with no ping of engine.io's outstanding started a ping task: {SEAM}"
    assert len(started) == 1, f"a PONG no longer restarts engine.io's ping cycle through schedule_ping: {SEAM}"
    source = inspect.getsource(AsyncSocket._send_ping)
    assert "self.send(packet.Packet(packet.PING))" in source, f"engine.io's pings no longer go through send: {SEAM}"


# ---- the reader's shortcuts (DirectSocket._read, _Silence, _answer_directly) ----------------------

def test_engineio_passes_a_socketio_frame_to_the_message_handler_as_the_reader_does():
    """DirectSocket._read hands ``data[1:]`` of a frame ``4<digit>...`` straight to the Engine.IO
    ``message`` handler: that is what engine.io's Packet and receive would pass, awaited in the reader."""
    import socketio
    decoded = packet.Packet(encoded_packet='42["message",{}]')
    assert (decoded.packet_type, decoded.data) == (packet.MESSAGE, '2["message",{}]'), \
        f"engine.io decodes a Socket.IO frame differently now: {SEAM}"
    receive = inspect.getsource(AsyncSocket.receive)
    assert "self.server._trigger_event(\n                'message', self.sid, pkt.data,\n" \
           "                run_async=self.server.async_handlers)" in receive, \
        f"engine.io's receive no longer passes a MESSAGE's data to the message event: {SEAM}"
    sio = socketio.AsyncServer(async_mode="aiohttp")
    assert sio.eio.handlers["message"] == sio._handle_eio_message and sio.eio.async_handlers is False, \
        f"python-socketio no longer handles Engine.IO messages in the reader through eio.on: {SEAM}"
    assert inspect.iscoroutinefunction(sio._handle_eio_message), SEAM


def test_aiohttp_sets_no_timer_for_a_receive_without_timeout_and_an_abort_ends_it():
    """_Silence replaces the per-frame timeout: aiohttp must then wait without a timer, and a
    transport's abort (connection_lost) must end the pending receive as a dropped connection does."""
    from aiohttp import web, web_protocol
    receive = inspect.getsource(web.WebSocketResponse.receive)
    assert "receive_timeout = timeout or self._receive_timeout" in receive and "if receive_timeout:" in receive, \
        f"aiohttp's receive() may time every frame now: {SEAM}"
    assert "receive_timeout" in inspect.signature(web.WebSocketResponse).parameters, SEAM
    lost = inspect.getsource(web_protocol.RequestHandler.connection_lost)
    assert "self._payload_parser.feed_eof()" in lost, \
        f"aiohttp's connection_lost no longer ends the WebSocket's reader: {SEAM}"


def test_the_ack_python_socketio_sends_for_a_handler_result():
    """_answer_directly acks as _handle_event_internal does: None -> no argument, a tuple -> one
    each, anything else -> one; through the packet class's encode."""
    from socketio.async_server import AsyncServer
    source = inspect.getsource(AsyncServer._handle_event_internal)
    for line in ("r = await server._trigger_event(data[0], namespace, sid, *data[1:])",
                 "if r is None:\n                data = []", "elif isinstance(r, tuple):\n                data = list(r)",
                 "data = [r]", "await server._send_packet(eio_sid, self.packet_class(\n"
                 "                packet.ACK, namespace=namespace, id=id, data=data))"):
        assert line in source, f"python-socketio's ack of a handler result changed ({line!r}): {SEAM}"
    send = inspect.getsource(AsyncServer._send_packet)
    assert "encoded_packet = pkt.encode()" in send and "await self.eio.send(eio_sid, ep)" in send, SEAM
    trigger = inspect.getsource(AsyncServer._trigger_event)
    assert "except asyncio.CancelledError:  # pragma: no cover\n                    ret = None" in trigger, SEAM


def test_the_turns_gathered_frames_are_written_for_every_socket_even_when_one_write_fails(caplog):
    """TurnWrites writes every socket that gathered frames in a turn; one socket's failure is
    logged and must not leave the sockets after it gathering with nobody left to write them."""
    import logging
    from types import SimpleNamespace

    from shotx.server.engineio_sockets import TurnWrites

    class Gathering:
        def __init__(self, sid: str, fails: bool) -> None:
            self.sid, self.fails, self.written = sid, fails, False
            self.server = SimpleNamespace(logger=logging.getLogger("shotx.test"))

        def _write_gathered(self) -> None:
            if self.fails:
                raise OSError("the transport broke")
            self.written = True

    async def scenario() -> list[Gathering]:
        turn = TurnWrites()
        sockets = [Gathering("a", False), Gathering("b", True), Gathering("c", False)]
        for socket in sockets:
            turn.add(socket)  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the turn's end: its one callback runs
        return sockets

    a, b, c = asyncio.run(scenario())
    assert a.written and c.written and not b.written
    assert "b: writing the gathered frames failed" in caplog.text
