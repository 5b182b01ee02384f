"""Stopping a server ends, whatever its clients are doing."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

from shotx.server import SxServer


async def test_shutdown_ends_while_a_member_has_stopped_reading(wait_until):
    """A half-open connection (a laptop closed mid-stream) must not hold shutdown forever.

    The member below completes the handshake, then never reads again: once the
    socket buffers fill, the server's writer for it blocks, so engine.io's
    close, which waits for that writer to drain, would never return.
    """
    app = web.Application()
    sx = SxServer(app, store="memory")
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/shotx/?EIO=4&transport=websocket")
        assert (await ws.receive_str()).startswith("0")  # engine.io open
        await ws.send_str('40{"token":"valid"}')
        await wait_until(lambda: len(sx.sockets) == 1)
        sid = next(iter(sx.sockets))
        await sx.sio.enter_room(sid, "stuck")
        for _ in range(40):  # 40 MB: far past what loopback buffers hold
            await sx.to("stuck").send("big", "x" * 1_000_000)
        started = time.monotonic()
        await asyncio.wait_for(runner.cleanup(), 30)
        assert time.monotonic() - started < 15
        await ws.close()
