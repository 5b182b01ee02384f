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
