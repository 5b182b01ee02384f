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
