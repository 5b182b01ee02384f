"""CPython transport: python-socketio's AsyncClient, reconnection off.

python-socketio calls its ``disconnect`` handler for a disconnect the client
asked for too; the transport contract (``transport.py``) says ``disconnect()``
reports nothing, so every handler and ack checks that its connection is
still the live one before it reaches the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio  # type: ignore[import-untyped]

from . import protocol
from .errors import AuthError, ConnectError
from .transport import AckCallback, EventSink


async def _unless_dropped(sio: socketio.AsyncClient, connecting: asyncio.Future[None]) -> None:
    """Wait for python-socketio's connect(), but not past the end of its connection.

    Once the Engine.IO handshake is done, connect() waits for the server's
    CONNECT (and our auth) up to its whole ``wait_timeout``, even when the
    connection under it has dropped meanwhile (python-socketio sets nothing
    on an Engine.IO disconnect before the namespace is connected): a cut
    there stalled the client for 10 s. Engine.IO's read loop, started by
    the handshake, ends with its connection.
    """
    while not connecting.done():
        await asyncio.wait({connecting}, timeout=0.05)
        reader = sio.eio.read_loop_task  # made by the handshake; done once its connection ended
        if reader is not None and reader.done() and not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            raise socketio.exceptions.ConnectionError("the connection dropped before the server answered")
    connecting.result()


class SocketioTransport:
    def __init__(self, transports: tuple[str, ...] = ("websocket",)) -> None:
        self.transports = list(transports)
        self._sio: socketio.AsyncClient | None = None

    def _while_live(self, sio: socketio.AsyncClient, fn: Callable[..., None]) -> Callable[..., None]:
        """``fn``, muted once ``sio`` is no longer this transport's connection."""
        def call(*args: Any) -> None:
            if self._sio is sio:
                fn(*args)
        return call

    async def connect(self, url: str, path: str, auth: dict[str, Any], on_event: EventSink) -> None:
        sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        refusal: list[str] = []

        def on_connect_error(data: Any = None) -> None:
            text = data.get("message") if isinstance(data, dict) else data
            refusal.append(str(text))

        def on_disconnect(reason: Any = None) -> None:
            self._sio = None  # reported once; later events of this socket are muted
            on_event("disconnect", str(reason))

        for event in (protocol.AUTH_SUCCESS_EVENT, protocol.MESSAGE_EVENT):
            sio.on(event, self._while_live(sio, lambda data=None, event=event: on_event(event, data)))
        sio.on("connect_error", on_connect_error)
        sio.on("disconnect", self._while_live(sio, on_disconnect))
        self._sio = sio  # before connect: auth_success may come with the handshake
        connecting = asyncio.ensure_future(sio.connect(
            url, auth=auth, socketio_path=path.strip("/"), transports=self.transports, wait_timeout=10, retry=False))
        try:
            await _unless_dropped(sio, connecting)
        except socketio.exceptions.ConnectionError as error:
            self._sio = None
            await sio.disconnect()
            http = sio.eio.http  # a refused namespace leaves engineio's session open
            if http is not None and not http.closed:
                await http.close()
            reason = refusal[-1] if refusal else str(error)
            if reason in protocol.AUTH_CODES:
                raise AuthError(reason) from None
            raise ConnectError(reason) from None

    async def emit(self, event: str, payload: Any, on_ack: AckCallback | None) -> None:
        sio = self._sio
        if sio is None:
            raise ConnectError("not connected")
        await sio.emit(event, payload, callback=None if on_ack is None else self._while_live(sio, on_ack))

    async def disconnect(self) -> None:
        sio, self._sio = self._sio, None  # first: what its disconnect fires is muted
        if sio is not None:
            await sio.disconnect()
