"""What SxServer does to python-engineio's sockets that its public API does not offer.

The one module that touches python-engineio's socket internals (the
``queue`` of an ``AsyncSocket`` and what its writer does with ``None``; the
``generate_id`` its handshake calls for a new session's id);
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

from .sticky import tagged_sid


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


def tag_session_ids(eio: Any, index: int) -> None:
    """Make every session id this Engine.IO server gives out start with ``<index>.``.

    Why: with several worker processes on one port (``workers.py``) the
    primary routes a long-polling request to the worker its sid names, without
    a table of sessions (``sticky.py``). python-engineio's handshake takes a new
    session's id from ``generate_id()``; python-socketio takes its namespace
    sids from the same method, so they carry the tag too (harmless: opaque).
    """
    generate = eio.generate_id
    eio.generate_id = lambda: tagged_sid(index, generate())
