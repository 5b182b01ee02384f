"""Idempotent resends: run a handler once per ``(principal, message id)``.

A client resends every message whose ack it did not see. If the first copy
is still running, the resend waits for the same result; if it finished, the
remembered reply comes back from the store without running the handler.
Replies are remembered for ``window`` seconds (the store drops older ones).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from .store import Store

Reply = dict[str, Any]


class ReplyMemory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._running: dict[tuple[str, str], asyncio.Future[Reply]] = {}

    async def once(self, principal: str, message_id: str, run: Callable[[], Awaitable[Reply]]) -> Reply:
        """The reply for this message, running ``run`` only if nobody did yet."""
        key = (principal, message_id)
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        remembered = await self.store.recall(principal, message_id)
        if remembered is not None:
            return cast(Reply, remembered)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            reply = await run()
            await self.store.remember(principal, message_id, reply, time.time())
            future.set_result(reply)
            return reply
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: a resend may never come to read it
            raise
        finally:
            del self._running[key]
