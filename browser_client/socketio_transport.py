"""CPython transport: python-socketio's AsyncClient, reconnection off."""

from __future__ import annotations

from typing import Any

import socketio  # type: ignore[import-untyped]

from . import protocol
from .errors import AuthError, ConnectError
from .transport import AckCallback, EventSink


class SocketioTransport:
    def __init__(self, transports: tuple[str, ...] = ("websocket",)) -> None:
        self.transports = list(transports)
        self._sio: socketio.AsyncClient | None = None

    async def connect(self, url: str, path: str, auth: dict[str, Any], on_event: EventSink) -> None:
        sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        refusal: list[str] = []

        def on_connect_error(data: Any = None) -> None:
            text = data.get("message") if isinstance(data, dict) else data
            refusal.append(str(text))

        sio.on("connect_error", on_connect_error)
        sio.on(protocol.AUTH_SUCCESS_EVENT, lambda data=None: on_event(protocol.AUTH_SUCCESS_EVENT, data))
        sio.on(protocol.MESSAGE_EVENT, lambda data=None: on_event(protocol.MESSAGE_EVENT, data))
        sio.on("disconnect", lambda reason=None: on_event("disconnect", reason))
        try:
            await sio.connect(url, auth=auth, socketio_path=path.strip("/"), transports=self.transports,
                              wait_timeout=10, retry=False)
        except socketio.exceptions.ConnectionError as error:
            await sio.disconnect()
            http = sio.eio.http  # a refused namespace leaves engineio's session open
            if http is not None and not http.closed:
                await http.close()
            reason = refusal[-1] if refusal else str(error)
            if reason in protocol.AUTH_CODES:
                raise AuthError(reason) from None
            raise ConnectError(reason) from None
        self._sio = sio

    async def emit(self, event: str, payload: Any, on_ack: AckCallback | None) -> None:
        if self._sio is None:
            raise ConnectError("not connected")
        await self._sio.emit(event, payload, callback=on_ack)

    async def disconnect(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            await sio.disconnect()
