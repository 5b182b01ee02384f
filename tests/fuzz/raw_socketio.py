"""A bare Engine.IO v4 / Socket.IO v5 client over aiohttp's websocket client.

It sends whatever text or bytes it is given, so the fuzzers can put frames on
the wire that no real client library would build, and it reads the server's
frames back: acks (``43<id>[...]``) resolve the future of their id, events are
kept (the newest thousand), pings (``2``) are answered (``3``) so the connection stays up,
and a close fails every pending ack with :class:`Closed`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import aiohttp

from shotx.client import binary


class Closed(Exception):
    """The server closed the connection (or the namespace) before answering."""

    clean = False  # set by whoever checked how it closed (RawSocket.clean_close)


class RawSocket:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session, self.ws = session, ws
        self.events: deque[Any] = deque(maxlen=1000)  # the newest; room traffic of fuzzed joins
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.clean_close = False
        self._binary_ack: tuple[int, Any, int, list[bytes]] | None = None  # one being received  # a close the server meant: a close packet or a normal websocket close
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._connected: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, token: Any = "valid", path: str = "shotx", timeout: float = 5.0) -> RawSocket:
        """Open the websocket, do the Engine.IO and Socket.IO handshakes; raise if refused."""
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(f"{url}/{path}/?EIO=4&transport=websocket", max_msg_size=0)
            opened = await asyncio.wait_for(ws.receive(), timeout)
            if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
                raise ConnectionError(f"no Engine.IO open packet: {opened!r}")
        except BaseException:
            await session.close()
            raise
        raw = cls(session, ws)
        await raw.send_text("40" + json.dumps({"token": token}))
        answer = await asyncio.wait_for(raw._connected, timeout)
        if answer[0] != "0":
            await raw.close()
            raise ConnectionRefusedError(answer)
        return raw

    async def send_text(self, frame: str) -> None:
        await self.ws.send_str(frame)

    async def send_bytes(self, frame: bytes) -> None:
        await self.ws.send_bytes(frame)

    def expect_ack(self, ack_id: int) -> asyncio.Future[Any]:
        """A future of the ack's arguments (a list); fails with Closed on a close."""
        future = self._acks[ack_id] = asyncio.get_running_loop().create_future()
        if self.closed.is_set():
            future.set_exception(Closed(self.close_reason))
        return future

    async def request(self, ack_id: int, frame: str | bytes, timeout: float) -> Any:
        """Send ``frame`` (which asks for ack ``ack_id``) and return the ack's arguments."""
        future = self.expect_ack(ack_id)
        try:
            if isinstance(frame, bytes):
                await self.send_bytes(frame)
            else:
                await self.send_text(frame)
            return await asyncio.wait_for(future, timeout)
        finally:
            self._acks.pop(ack_id, None)

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.ws.close()
        await self.session.close()
        self._set_closed("closed by the test")

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(frame.data)
                elif frame.type == aiohttp.WSMsgType.BINARY:
                    self.events.append(("binary", frame.data))
                    self._on_attachment(frame.data)
                else:
                    break
            self._set_closed(f"websocket closed ({self.ws.close_code})", clean=self.ws.close_code in (1000, 1001, 1009))  # 1009: too big
        except Exception as error:  # a broken connection is a close too
            self._set_closed(f"websocket failed: {error!r}")

    async def _on_text(self, text: str) -> None:
        if text == "2":
            await self.ws.send_str("3")
        elif text == "1":
            self._set_closed("engine.io close packet", clean=True)
        elif text.startswith("40") or text.startswith("44"):
            if not self._connected.done():
                self._connected.set_result(text[1:])
        elif text.startswith("41"):
            self._set_closed("socket.io disconnect packet", clean=True)
        elif text.startswith("43"):
            digits = len(text[2:]) - len(text[2:].lstrip("0123456789"))
            future = self._acks.get(int(text[2:2 + digits]))
            if future is not None and not future.done():
                future.set_result(json.loads(text[2 + digits:]))
        elif text.startswith("46"):  # a binary ack: '46<count>-<id>[...]', then <count> binary frames
            count, _, rest = text[2:].partition("-")
            digits = len(rest) - len(rest.lstrip("0123456789"))
            self._binary_ack = (int(rest[:digits]), json.loads(rest[digits:]), int(count), [])
        elif text.startswith("42"):
            self.events.append(("event", text[2:]))
        else:
            self.events.append(("other", text))

    def _on_attachment(self, data: bytes) -> None:
        if self._binary_ack is None:
            return
        ack_id, payload, count, attachments = self._binary_ack
        attachments.append(data)
        if len(attachments) == count:
            self._binary_ack = None
            future = self._acks.get(ack_id)
            if future is not None and not future.done():
                future.set_result(binary.join(payload, attachments))

    def _set_closed(self, reason: str, clean: bool = False) -> None:
        if not self.closed.is_set():
            self.close_reason, self.clean_close = reason, clean
            self.closed.set()
        if not self._connected.done():
            self._connected.set_exception(Closed(reason))
            self._connected.exception()
        for future in self._acks.values():
            if not future.done():
                future.set_exception(Closed(reason))
                future.exception()  # retrieved: the caller may not wait for it
