"""Closed connections are freed at once (issue 10 point 3: memory after many clients).

python-engineio 4.15.1 kept every closed socket alive for up to its ping
interval (25 s): its ping task sleeps first and was never cancelled. A real
server, real WebSocket clients that connect and leave; then no closed
Engine.IO socket is alive any more, long before 25 s.
"""

from __future__ import annotations

import gc
import weakref

import aiohttp
import pytest

from test_fast_path import raw_member

CLIENTS = 20


@pytest.mark.parametrize("compression", [False, True], ids=["uncompressed", "permessage-deflate"])
async def test_closed_engineio_sockets_are_not_kept_alive_by_their_ping(start_server, wait_until, compression):
    server = await start_server(websocket_compression=compression)
    assert server.sx.sio.eio.ping_interval >= 20  # engine.io's default: the wait below is far shorter
    eio = server.sx.sio.eio
    async with aiohttp.ClientSession() as http:
        members = [await raw_member(http, server.url, compress=15) for _ in range(CLIENTS)]
        sockets = [weakref.ref(socket) for socket in eio.sockets.values()]
        assert len(sockets) == CLIENTS
        for ws in members:
            await ws.close()
    await wait_until(lambda: not eio.sockets)

    def freed() -> bool:
        gc.collect()
        return all(socket() is None for socket in sockets)

    await wait_until(freed, timeout=5)


@pytest.mark.parametrize("leaving", ["close frame", "connection dropped"])
async def test_a_closed_connection_leaves_no_cycle_for_the_garbage_collector(start_server, wait_until, leaving):
    """With the collector off, every closed connection's socket, WebSocket and request are freed
    by reference counting alone. When the client drops its TCP connection, aiohttp answers the
    EOF with a close frame that fails, and keeps that error on the WebSocket: its traceback held
    the WebSocket's frames, a cycle of about 90 objects per connection that only a full
    collection freed (engineio_sockets._drop_tracebacks)."""
    import socket as pysocket

    server = await start_server()
    eio = server.sx.sio.eio
    gc.collect()
    gc.disable()
    try:
        async with aiohttp.ClientSession() as http:
            members = [await raw_member(http, server.url) for _ in range(CLIENTS)]
            sockets = [weakref.ref(socket) for socket in eio.sockets.values()]
            for ws in members:
                if leaving == "close frame":
                    await ws.close()
                else:
                    ws.get_extra_info("socket").shutdown(pysocket.SHUT_RDWR)
            await wait_until(lambda: not eio.sockets)
            await wait_until(lambda: all(socket() is None for socket in sockets), timeout=5)
    finally:
        gc.enable()
