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

Bytes (``shotx.client.binary``) cross as ``Uint8Array`` objects beside the JSON
text, never inside it: on the way out the text carries Socket.IO's
placeholders and the JavaScript side puts the arrays in their place before
``socket.emit`` (socket.io-client then sends them as binary attachments);
on the way in it takes every ``ArrayBuffer`` or typed array out of the data
while it stringifies it, and hands the arrays over as a second argument,
which Python copies into ``bytes``. A message without bytes crosses as
before, as one string.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import JsProxy, create_proxy  # type: ignore[import-not-found]

from . import binary, protocol
from .errors import AuthError, ConnectError
from .transport import AckCallback, EventSink


# ``stringify(value)``: [JSON text, attachments or undefined], every ArrayBuffer
# or typed array in ``value`` replaced by a placeholder naming its Uint8Array.
_STRINGIFY = """
  const stringify = (value) => {
    const found = [];
    const text = JSON.stringify(value === undefined ? null : value, function (key, item) {
      const raw = this[key];  // before toJSON: typed arrays have none, but be exact
      if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) {
        found.push(raw instanceof ArrayBuffer ? new Uint8Array(raw)
                                              : new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
        return { _placeholder: true, num: found.length - 1 };
      }
      return item;
    });
    return [text, found.length ? found : undefined];
  };"""

# socket.emit with data given as JSON text (and the Uint8Arrays its placeholders
# name); the ack, if any, comes back to ``sink(number, replyJson[, attachments])``.
_EMIT = js.Function.new("socket", "event", "json", "sink", "number", "attachments", _STRINGIFY + """
  const data = attachments === undefined ? JSON.parse(json) : JSON.parse(json, (key, value) =>
    value !== null && typeof value === "object" && value._placeholder === true && typeof value.num === "number"
      ? attachments[value.num] : value);
  if (sink === undefined) { socket.emit(event, data); return; }
  socket.emit(event, data, (reply) => sink(number, ...stringify(reply)));""")

# socket.on for events whose single argument is data: the listener gets JSON
# text, and the Uint8Arrays its placeholders name when it holds bytes.
_ON_JSON = js.Function.new("socket", "event", "listener", _STRINGIFY + """
  socket.on(event, (data) => listener(...stringify(data)));""")


def to_js_bytes(attachments: tuple[bytes, ...] | list[bytes]) -> Any:
    """A JavaScript array of ``Uint8Array`` copies of ``attachments``."""
    arrays = js.Array.new()
    for attachment in attachments:
        array = js.Uint8Array.new(len(attachment))
        array.assign(attachment)
        arrays.push(array)
    return arrays


def from_js_bytes(arrays: Any) -> tuple[bytes, ...]:
    """``bytes`` copies of a JavaScript array of ``Uint8Array`` (None or undefined: none)."""
    if arrays is None or not isinstance(arrays, JsProxy):
        return ()
    return tuple(array.to_bytes() for array in arrays)


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
        proxy = create_proxy(lambda text, arrays=None: on_event(event, binary.decode(text, from_js_bytes(arrays))))
        self._listeners.append(proxy)
        _ON_JSON(socket, event, proxy)

    def _acked(self, number: int, reply_json: str, arrays: Any = None) -> None:
        on_ack = self._acks.pop(number, None)
        if on_ack is not None:
            on_ack(binary.decode(reply_json, from_js_bytes(arrays)))

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
        text, attachments = binary.encode(payload)
        arrays = to_js_bytes(attachments) if attachments else None  # None reaches JavaScript as undefined
        if on_ack is None:
            _EMIT(self._socket, event, text, None, 0, arrays)
            return
        self._next_ack += 1
        self._acks[self._next_ack] = on_ack
        _EMIT(self._socket, event, text, self._ack_sink, self._next_ack, arrays)

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
