"""What the client needs from a socket: the seam between policy and I/O.

Two adapters implement it: ``socketio_transport.py`` (python-socketio's
AsyncClient, CPython) and ``js_transport.py`` (the JavaScript
socket.io-client through Pyodide's FFI). Both turn reconnection *off* in the
underlying library: :class:`~shotx.client.client.SxClient` reconnects itself
with :class:`~shotx.client.core.Backoff`, so the two behave the same.

The contract, which ``tests/contract/test_transport_contract.py`` runs
against both adapters (the client's outbox flush hangs on any difference):

* ``connect`` reports ``"auth_success"`` and ``"message"`` events through
  ``on_event`` until the connection ends.
* A connection that ends *without* the client asking (the server closed it,
  the network dropped, a ping timed out) is reported once, as
  ``on_event("disconnect", reason)``.
* ``disconnect()`` reports **nothing**: from the moment it is called, no
  event of that connection reaches ``on_event`` and no ack reaches an
  ``on_ack``. The caller knows it ended the connection and treats its own
  call as the end (``SxClient._drop_connection`` stops the sender). This is
  the natural shape for the browser, whose listeners are Pyodide proxies
  that must be removed before they are destroyed.
* An ack that has not arrived when the connection ends never arrives; the
  record it belongs to is resent on the next connection.
* ``emit`` without a connection raises ``ConnectError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

#: on_event(name, payload): "auth_success" (auth data), "message" (envelope),
#: "disconnect" (reason text; only for an end the client did not ask for).
#: Called on the event loop's thread.
EventSink = Callable[[str, Any], None]
AckCallback = Callable[[Any], None]


class Transport(Protocol):
    async def connect(self, url: str, path: str, auth: dict[str, Any], on_event: EventSink) -> None:
        """Open the socket; raise ``AuthError`` on a refusal, ``ConnectError`` otherwise."""

    async def emit(self, event: str, payload: Any, on_ack: AckCallback | None) -> None:
        """Send one event; ``on_ack`` gets the server's ack if it arrives before the connection ends."""

    async def disconnect(self) -> None:
        """Close the socket and release everything it holds; reports no event (see above)."""
