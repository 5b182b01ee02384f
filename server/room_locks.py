"""Per-room ordering: locks, and the order of live deliveries.

A room send appends under the room's lock (offsets are handed out in call
order) and awaits its commit after releasing it, so that concurrent sends to
one room share a commit. :class:`DeliveryOrder` then makes their broadcasts
leave in offset order, and lets a join wait until every send before it has
been delivered. Neither keeps anything for a room nobody is using.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class RoomLocks:
    """One lock per room, kept only while someone holds or waits for it.

    A room's offsets are handed out under its lock (and a join's replay
    runs under it), so a server that sees a million rooms must not keep a
    million locks.

    >>> locks = RoomLocks()
    >>> async def use():
    ...     async with locks.hold("news"):
    ...         assert locks.held == 1
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @property
    def held(self) -> int:
        return len(self._locks)

    def hold(self, room: str) -> _HeldRoom:
        return _HeldRoom(self._locks, room)

    async def acquire(self, room: str) -> Callable[[], None]:
        """Take the room's lock and return its release, for a holder whose
        work outlives one ``async with`` (a join's replay goes out after its answer)."""
        held = _HeldRoom(self._locks, room)
        await held.__aenter__()
        return held.release


class _HeldRoom:
    """``async with`` for :meth:`RoomLocks.hold`: a plain class, the cheapest context manager."""

    __slots__ = ("_locks", "_room", "_lock")

    def __init__(self, locks: dict[str, tuple[asyncio.Lock, int]], room: str) -> None:
        self._locks, self._room = locks, room
        lock, users = locks.get(room) or (asyncio.Lock(), 0)
        locks[room] = (lock, users + 1)
        self._lock = lock

    async def __aenter__(self) -> None:
        try:
            await self._lock.acquire()
        except BaseException:
            self._forget()
            raise

    async def __aexit__(self, *_: Any) -> None:
        self.release()

    def release(self) -> None:
        self._lock.release()
        self._forget()

    def _forget(self) -> None:
        lock, users = self._locks[self._room]
        if users == 1:
            del self._locks[self._room]
        else:
            self._locks[self._room] = (lock, users - 1)


class DeliveryOrder:
    """Live broadcasts of a room, one after another in the order sends took their turn.

    >>> order = DeliveryOrder()
    >>> async def send():
    ...     previous, mine = order.take("news")   # under the room lock, right after the append
    ...     try:
    ...         await order.wait(previous)        # after the commit: the earlier sends went out
    ...         ...                               # broadcast
    ...     finally:
    ...         order.done("news", mine)
    """

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    def take(self, room: str) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """The previous send's future (None if it is done) and this send's own."""
        previous = self._last.get(room)
        mine = self._last[room] = asyncio.get_running_loop().create_future()
        return previous, mine

    @staticmethod
    async def wait(previous: asyncio.Future[None] | None) -> None:
        """Wait for a turn; shielded, so that a waiter's cancellation never breaks the chain."""
        if previous is not None and not previous.done():
            await asyncio.shield(previous)

    def done(self, room: str, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._last.get(room) is mine:
            del self._last[room]

    async def settled(self, room: str) -> None:
        """Return once every send that took its turn so far has finished."""
        await self.wait(self._last.get(room))

    @property
    def busy(self) -> int:
        return len(self._last)
