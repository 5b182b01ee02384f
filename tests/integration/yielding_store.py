"""A wrapper around a real store whose every call yields to the event loop.

The memory store never awaits and the SQLite store's reads answer on the
spot, so code that checks something, awaits the store and then acts on what
it checked looks right on both. A Redis store really awaits (a round trip).
This wrapper makes any real store behave like that: before and after each
call it gives the loop ``turns`` turns, so every other task ready to run gets
there first. Nothing is faked: the wrapped store does the work.

Only :class:`~shotx.server.store.Store`'s methods are forwarded (no
``live_entries``), so the server does not take it for a shared store.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shotx.server import Store


class YieldingStore:
    """``YieldingStore(SqliteStore(path))``: the same store, yielding around every call."""

    def __init__(self, inner: Store, turns: int = 3) -> None:
        self.inner = inner
        self.turns = turns
        self.calls: list[str] = []  # method names, in call order

    async def _yield(self) -> None:
        for _ in range(self.turns):
            await asyncio.sleep(0)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(name)
        await self._yield()
        result = await getattr(self.inner, name)(*args, **kwargs)
        await self._yield()
        return result

    async def open(self) -> None:
        await self._call("open")

    async def close(self) -> None:
        await self._call("close")

    async def append(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("append", *args, **kwargs)

    async def flushed(self) -> None:
        await self._call("flushed")

    async def read(self, *args: Any) -> Any:
        return await self._call("read", *args)

    async def bounds(self, room: str) -> Any:
        return await self._call("bounds", room)

    async def mark_delivered(self, room: str, offset: int) -> None:
        await self._call("mark_delivered", room, offset)

    async def drop_older_than(self, ts: float) -> int:
        return int(await self._call("drop_older_than", ts))

    async def remember(self, *args: Any) -> None:
        await self._call("remember", *args)

    async def recall(self, principal: str, message_id: str) -> Any:
        return await self._call("recall", principal, message_id)

    async def forget_replies_before(self, ts: float) -> int:
        return int(await self._call("forget_replies_before", ts))
