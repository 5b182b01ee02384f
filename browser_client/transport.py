"""What the client needs from a socket: the seam between policy and I/O.

Two adapters implement it: ``socketio_transport.py`` (python-socketio's
AsyncClient, CPython) and ``js_transport.py`` (the JavaScript
socket.io-client through Pyodide's FFI). Both turn reconnection *off* in the
underlying library: :class:`~shotx.client.client.SxClient` reconnects itself
with :class:`~shotx.client.core.Backoff`, so the two behave the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

#: on_event(name, payload): "auth_success" (auth data), "message" (envelope),
#: "disconnect" (reason text). Called on the event loop's thread.
EventSink = Callable[[str, Any], None]
AckCallback = Callable[[Any], None]


class Transport(Protocol):
    async def connect(self, url: str, path: str, auth: dict[str, Any], on_event: EventSink) -> None:
        """Open the socket; raise ``AuthError`` on a refusal, ``ConnectError`` otherwise."""

    async def emit(self, event: str, payload: Any, on_ack: AckCallback | None) -> None:
        """Send one event; ``on_ack`` gets the server's ack if it ever arrives."""

    async def disconnect(self) -> None:
        """Close the socket and release everything it holds."""
