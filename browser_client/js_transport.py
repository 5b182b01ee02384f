"""Browser transport: the JavaScript socket.io-client, driven over Pyodide's FFI.

The page loads ``socket.io.min.js`` (global ``io``). This file only
translates: Python dicts cross as JSON text (``JSON.parse``/``JSON.stringify``
on the JavaScript side), which keeps ``None`` as ``null`` where ``to_js``
would make ``undefined`` and drop the key. Messages and acks cross through two
small JavaScript helpers, so each is one FFI call with strings and numbers,
with no proxy made per message: acks are matched by a number to a Python
callback, and an ack that never comes is dropped with the socket. The few
proxies made here (listeners, one ack sink per socket) are destroyed by
:meth:`JsTransport.disconnect`.
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


# socket.emit with data given as JSON text; the ack, if any, comes back to
# ``sink(number, replyJson)``.
_EMIT = js.Function.new("socket", "event", "json", "sink", "number", """
  const data = JSON.parse(json);
  if (sink === undefined) { socket.emit(event, data); return; }
  socket.emit(event, data, (reply) => sink(number, JSON.stringify(reply === undefined ? null : reply)));""")

# socket.on for events whose single argument is data: the listener gets JSON text.
_ON_JSON = js.Function.new("socket", "event", "listener", """
  socket.on(event, (data) => listener(JSON.stringify(data === undefined ? null : data)));""")


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
        self._acks: dict[int, AckCallback] = {}  # by the number sent along with the message
        self._next_ack = 0
        self._ack_sink: Any = None

    def _listen(self, socket: Any, event: str, fn: Callable[..., None]) -> None:
        proxy = create_proxy(fn)
        self._listeners.append(proxy)
        socket.on(event, proxy)

    def _listen_json(self, socket: Any, event: str, on_event: EventSink) -> None:
        proxy = create_proxy(lambda text: on_event(event, json.loads(text)))
        self._listeners.append(proxy)
        _ON_JSON(socket, event, proxy)

    def _acked(self, number: int, reply_json: str) -> None:
        on_ack = self._acks.pop(number, None)
        if on_ack is not None:
            on_ack(json.loads(reply_json))

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
        self._listen_json(socket, protocol.AUTH_SUCCESS_EVENT, on_event)
        self._listen_json(socket, protocol.MESSAGE_EVENT, on_event)
        self._listen(socket, "disconnect", lambda reason=None, *_: on_event("disconnect", str(reason)))
        self._ack_sink = create_proxy(self._acked)
        try:
            await outcome
        except BaseException:
            await self.disconnect()
            raise

    async def emit(self, event: str, payload: Any, on_ack: AckCallback | None) -> None:
        if self._socket is None:
            raise ConnectError("not connected")
        if on_ack is None:
            _EMIT(self._socket, event, protocol.encode_json(payload))
            return
        self._next_ack += 1
        self._acks[self._next_ack] = on_ack
        _EMIT(self._socket, event, protocol.encode_json(payload), self._ack_sink, self._next_ack)

    async def disconnect(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.off()  # no listener may fire into a destroyed proxy
            socket.close()
        for proxy in [*self._listeners, *([self._ack_sink] if self._ack_sink is not None else [])]:
            proxy.destroy()
        self._listeners.clear()
        self._ack_sink = None
        self._acks.clear()

    @property
    def live_proxies(self) -> int:
        """For tests: the proxies this transport still holds (0 after disconnect)."""
        return len(self._listeners) + (self._ack_sink is not None)
