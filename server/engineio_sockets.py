"""What SxServer does to python-engineio's sockets that its public API does not offer.

The one module that touches python-engineio's socket internals (the
``queue`` of an ``AsyncSocket`` and what its writer does with ``None``);
``tests/unit/test_engineio_sockets.py`` fails loudly when the pinned version
changes them.

Why: on shutdown engine.io's ``close()`` sends a CLOSE packet and leaves the
WebSocket open. The JavaScript client ignores a CLOSE packet on a WebSocket
(it only honours it on long-polling), so a page stayed on a dead socket until
its ping timeout (45 s) and the server waited as long for its writers. The
original Shotx server (Node) closes its connections when it exits, and pages
reconnect at once. Ending each socket's writer after its CLOSE packet makes
the writer close the WebSocket itself (a close frame, which every client
notices), and a long-poll waiting for packets gets the CLOSE packet.
"""

from __future__ import annotations

from typing import Any


async def close_every_socket_now(eio: Any) -> int:
    """Close every Engine.IO socket without waiting for any of them; returns how many.

    Each gets its disconnect event and a CLOSE packet (which a pending
    long-poll returns), then ``None`` in its queue: engine.io's WebSocket
    writer stops at ``None`` and closes the WebSocket. A writer blocked on a
    client that stopped reading never gets there; aiohttp's shutdown
    timeout ends that connection.
    """
    sockets = list(eio.sockets.values())
    for socket in sockets:
        await socket.close(wait=False, abort=False)
    for socket in sockets:
        socket.queue.put_nowait(None)
    return len(sockets)
