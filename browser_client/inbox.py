"""Incoming messages: one at a time, deduplicated, offsets stored after handlers.

Handling one message at a time is what makes "a room's offset is stored only
after its handler finished" mean something: the stored offset never runs
ahead of a handler still working on an earlier message.

Join answers go through the same queue, in the order the socket delivered
them (both transports call their listeners and ack callbacks in wire order):
the server sends a join's answer before its replay, so the room's position
(and its epoch) is taken from the answer before the first replayed message is
judged against it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from . import protocol
from .core import Gap, RoomBook
from .store import ClientStore

log = logging.getLogger("shotx.client")
Handler = Callable[..., Any]
GapHandler = Callable[[Gap], Any]


class _Answer:
    """A join answer waiting in the queue behind the messages that came before it."""

    __slots__ = ("room", "reply", "done")

    def __init__(self, room: str, reply: Any, done: asyncio.Future[Any]) -> None:
        self.room, self.reply, self.done = room, reply, done


class Inbox:
    def __init__(self, store: ClientStore) -> None:
        self.store = store
        self.rooms = RoomBook()
        self.handlers: dict[str, tuple[Handler, int]] = {}
        self.gap_handlers: list[GapHandler] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()  # set whenever a room's offset moved

    def on(self, type_: str, handler: Handler) -> None:
        self.handlers[type_] = (handler, protocol.handler_arity(handler, 2))

    def put(self, message: Any) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        self._queue.put_nowait(message)

    def put_answer(self, room: str, reply: Any, done: asyncio.Future[Any]) -> None:
        """Queue a join's ack (from the ack callback, so in wire order); ``done``
        gets the reply once the answer is adopted."""
        self.put(_Answer(room, reply, done))

    async def drained(self) -> None:
        """Every message received so far has been handled."""
        await self._queue.join()

    async def reached(self, room: str, offset: int) -> None:
        """Return once the room's position is at ``offset`` or past it (or the room was left)."""
        while room in self.rooms.offsets and (self.rooms.offsets[room] or 0) < offset:
            self._moved.clear()
            await self._moved.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                if isinstance(message, _Answer):
                    await self._adopt(message)
                else:
                    await self._handle(message)
            except Exception:
                log.exception("handling an incoming message failed")
            finally:
                self._queue.task_done()
                self._moved.set()

    async def _adopt(self, answer: _Answer) -> None:
        try:
            reply = answer.reply
            data = reply.get("data") if isinstance(reply, dict) and _succeeded(reply) else None
            changed, gap = self.rooms.adopt_answer(answer.room, data)
            if changed:
                await self.store.save_room(answer.room, self.rooms.offsets[answer.room],
                                           self.rooms.epochs.get(answer.room))
            if gap is not None:
                await self._report(gap)
        finally:
            if not answer.done.done():
                answer.done.set_result(answer.reply)

    async def _report(self, gap: Gap) -> None:
        """Tell the application, before the replay that follows the answer is handled."""
        log.warning("room %s: %s (since=%s head=%s missed=%s)", gap.room, gap.reason, gap.since, gap.head,
                    gap.missed)
        await call_each(self.gap_handlers, gap, "gap handler")

    async def _handle(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("meta"), dict):
            log.warning("ignored a message without meta")
            return
        meta = message["meta"]
        if not isinstance(meta.get("type"), str) or not isinstance(meta.get("id", ""), str):
            log.warning("ignored a message with a malformed meta: %.200r", meta)
            return
        if not self.rooms.accept(meta):
            return
        found = self.handlers.get(meta["type"])
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


async def call_each(handlers: list[Callable[[Any], Any]], argument: Any, what: str) -> None:
    """Call each application callback (sync or async) in turn; one that raises is logged, not fatal."""
    for handler in handlers:
        try:
            result = handler(argument)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s raised", what)


def _succeeded(reply: dict[str, Any]) -> bool:
    meta = reply.get("meta")
    return isinstance(meta, dict) and bool(meta.get("success"))
