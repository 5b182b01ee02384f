"""Incoming messages: one at a time, deduplicated, offsets stored after handlers.

Handling one message at a time is what makes "a room's offset is stored only
after its handler finished" mean something: the stored offset never runs
ahead of a handler still working on an earlier message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from . import protocol
from .core import RoomBook
from .store import ClientStore

log = logging.getLogger("shotx.client")
Handler = Callable[..., Any]


class Inbox:
    def __init__(self, store: ClientStore) -> None:
        self.store = store
        self.rooms = RoomBook()
        self.handlers: dict[str, tuple[Handler, int]] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def on(self, type_: str, handler: Handler) -> None:
        self.handlers[type_] = (handler, protocol.handler_arity(handler, 2))

    def put(self, message: Any) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._queue.put_nowait(message)

    async def drained(self) -> None:
        """Every message received so far has been handled."""
        await self._queue.join()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("handling an incoming message failed")
            finally:
                self._queue.task_done()

    async def _handle(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("meta"), dict):
            log.warning("ignored a message without meta")
            return
        meta = message["meta"]
        if not self.rooms.accept(meta):
            return
        found = self.handlers.get(str(meta.get("type")))
        if found is None:
            log.warning("no handler for message type %r", meta.get("type"))
        else:
            handler, takes = found
            try:
                result = handler(*(message.get("data"), meta)[:takes])
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("handler for %r raised", meta.get("type"))
        room, offset, message_id = meta.get("room"), meta.get("offset"), meta.get("id")
        if self.rooms.handled(room, offset, message_id) and isinstance(message_id, str):
            await self.store.mark_handled(room, offset, message_id)
