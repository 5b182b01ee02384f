"""Browser transport: the JavaScript socket.io-client, driven over Pyodide's FFI.

The page loads ``socket.io.min.js`` (global ``io``). This file only
translates: Python dicts cross as JSON (``JSON.parse``/``JSON.stringify``),
which keeps ``None`` as ``null`` where ``to_js`` would make ``undefined`` and
drop the key. Every proxy made here is owned here and destroyed by
:meth:`JsTransport.disconnect` (listeners) or right after its single call
(acks); an ack that never comes is destroyed with the socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import JsProxy, create_proxy  # type: ignore[import-not-found]

from . import protocol
from .errors import AuthError, ConnectError
from .transport import AckCallback, EventSink


def to_js_value(value: Any) -> Any:
    return js.JSON.parse(json.dumps(value))


def to_py_value(value: Any) -> Any:
    """JS value -> plain Python (dicts, lists, str, numbers, None)."""
    if isinstance(value, JsProxy):
        text = js.JSON.stringify(value)
        return None if text is None else json.loads(text)
    return value


class JsTransport:
    def __init__(self, transports: tuple[str, ...] = ("websocket",)) -> None:
        self.transports = list(transports)
        self._socket: Any = None
        self._listeners: list[Any] = []
        self._acks: dict[int, Any] = {}  # JsProxy is unhashable: keyed by id()

    def _listen(self, socket: Any, event: str, fn: Callable[..., None]) -> None:
        proxy = create_proxy(fn)
        self._listeners.append(proxy)
        socket.on(event, proxy)

    async def connect(self, url: str, path: str, auth: dict[str, Any], on_event: EventSink) -> None:
        outcome: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        options = {"path": path, "auth": auth, "reconnection": False, "forceNew": True,
                   "transports": self.transports}
        socket = js.io(url, to_js_value(options))
        self._socket = socket

        def connected(*_: Any) -> None:
            if not outcome.done():
                outcome.set_result(None)

        def refused(error: Any = None, *_: Any) -> None:
            text = str(getattr(error, "message", error))
            if not outcome.done():
                outcome.set_exception(AuthError(text) if text in protocol.AUTH_CODES else ConnectError(text))

        self._listen(socket, "connect", connected)
        self._listen(socket, "connect_error", refused)
        self._listen(socket, protocol.AUTH_SUCCESS_EVENT,
                     lambda data=None, *_: on_event(protocol.AUTH_SUCCESS_EVENT, to_py_value(data)))
        self._listen(socket, protocol.MESSAGE_EVENT,
                     lambda data=None, *_: on_event(protocol.MESSAGE_EVENT, to_py_value(data)))
        self._listen(socket, "disconnect", lambda reason=None, *_: on_event("disconnect", str(reason)))
        try:
            await outcome
        except BaseException:
            await self.disconnect()
            raise

    async def emit(self, event: str, payload: Any, on_ack: AckCallback | None) -> None:
        if self._socket is None:
            raise ConnectError("not connected")
        if on_ack is None:
            self._socket.emit(event, to_js_value(payload))
            return
        loop = asyncio.get_running_loop()

        def acked(reply: Any = None, *_: Any) -> None:
            self._acks.pop(id(proxy), None)
            loop.call_soon(proxy.destroy)  # not from inside its own call
            on_ack(to_py_value(reply))

        proxy = create_proxy(acked)
        self._acks[id(proxy)] = proxy
        self._socket.emit(event, to_js_value(payload), proxy)

    async def disconnect(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.off()  # no listener may fire into a destroyed proxy
            socket.close()
        for proxy in [*self._listeners, *self._acks.values()]:
            proxy.destroy()
        self._listeners.clear()
        self._acks.clear()

    @property
    def live_proxies(self) -> int:
        """For tests: what this transport still holds (0 after disconnect)."""
        return len(self._listeners) + len(self._acks)
