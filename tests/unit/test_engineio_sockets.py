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
