"""Stopping a server ends, whatever its clients are doing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import socketio
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


async def test_a_sigterm_closes_every_connection_at_once_and_the_server_exits(tmp_path):
    """A deploy: SIGTERM to the demo server. Defect: engine.io sent a CLOSE packet,
    which the JavaScript client ignores on a WebSocket, and then waited for it, so
    pages noticed after the 45 s ping timeout and the server exited after 47 s.
    Here a WebSocket and a long-polling client must both see the end within a
    second, and the process exit within two."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotx.server", "--port", "0", "--store", str(tmp_path / "s.sqlite3"),
         "--interval", "0", "--web", os.devnull], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{url.replace('http', 'ws')}/shotx/?EIO=4&transport=websocket")
            assert (await ws.receive_str()).startswith("0")
            await ws.send_str('40{"token":"valid"}')
            assert (await ws.receive_str()).startswith("40")
            polling = socketio.AsyncClient(reconnection=False)
            ended = asyncio.Event()
            polling.on("disconnect", lambda *reason: ended.set())
            await polling.connect(url, auth={"token": "valid"}, socketio_path="shotx", transports=["polling"])
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            while (message := await asyncio.wait_for(ws.receive(), 5)).type is aiohttp.WSMsgType.TEXT:
                pass  # auth_success, then the CLOSE packet, then the close frame
            assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
            websocket_seen = time.monotonic() - started
            await asyncio.wait_for(ended.wait(), 5)
            polling_seen = time.monotonic() - started
            await asyncio.to_thread(proc.wait, 10)
            exited = time.monotonic() - started
        assert websocket_seen < 1.0 and polling_seen < 1.0 and exited < 2.0, (websocket_seen, polling_seen, exited)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
