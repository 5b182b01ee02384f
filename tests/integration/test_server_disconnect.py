"""The server ending a connection never waits for ever (issue 8: the Redis-restart fault test's hang).

``sio.eio.disconnect(sid)`` (what ``SxServer._end_connection`` and python-socketio's
``disconnect(sid)`` do) queues a CLOSE packet and waits until the socket's queue is
written out. A connection that had just dropped could have its WebSocket writer stopped
already (it stops at the ``None`` its reader queues when the client goes, or at a failed
write) while the socket was not yet closed: the CLOSE packet stayed queued and the
disconnect waited for ever, holding whatever awaited it. In the fault test that was a
resend the store could not answer, whose turn then blocked every message behind it on
its connection. Here the writer is stopped the way the reader stops it, then the
connection is ended from the server side.
"""

from __future__ import annotations

import asyncio
import json

import socketio  # type: ignore[import-untyped]


async def test_ending_a_connection_whose_writer_stopped_returns_and_the_client_sees_it(start_server):
    server = await start_server()
    gone = asyncio.Event()
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("disconnect", lambda *_: gone.set())
    await sio.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=["websocket"])
    try:
        eio = server.sx.sio.eio
        (eio_sid, socket), = eio.sockets.items()
        socket.queue.put_nowait(None)  # what the reader queues when its client goes: the writer stops
        await asyncio.wait_for(eio.disconnect(eio_sid), 5)  # waited for ever before
        assert socket.closed and eio_sid not in eio.sockets
        await asyncio.wait_for(gone.wait(), 5)  # the writer closed the WebSocket on its way out
    finally:
        await sio.disconnect()


async def test_a_long_poll_pending_when_its_client_closes_is_answered_at_once(start_server, wait_until):
    """A long-polling client that closes (a CLOSE packet in a POST) while its GET waits for
    packets: engine.io answered that GET only at its timeout (ping interval plus timeout,
    45 s), which kept a closed Node.js socket.io-client's process alive; Node's engine.io
    answers it at once."""
    import aiohttp

    server = await start_server()
    base = f"{server.url}/shotx/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as opened:
            sid = json.loads((await opened.text())[1:])["sid"]
        url = f"{base}&sid={sid}"
        async with http.post(url, data='40{"token":"t"}') as connect:
            assert connect.status == 200
        received = ""
        while "auth_success" not in received:  # what the connect sends; nothing more is queued then
            async with http.get(url) as poll:
                received += await poll.text()
        pending = asyncio.ensure_future(http.get(url))
        socket = server.sx.sio.eio.sockets[sid]
        await wait_until(lambda: bool(socket.queue._getters))  # the GET waits for packets
        async with http.post(url, data="1") as close:
            assert close.status == 200
        response = await asyncio.wait_for(pending, 5)  # 45 s before
        assert response.status == 200
        response.release()
