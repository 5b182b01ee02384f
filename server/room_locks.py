"""Per-room locks that do not outlive their use."""

from __future__ import annotations

import asyncio
from typing import Any


class RoomLocks:
    """One lock per room, kept only while someone holds or waits for it.

    A room's offsets are handed out and broadcast in order under its lock
    (and a join's replay runs under it), so a server that sees a million
    rooms must not keep a million locks.

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
        self._lock.release()
        self._forget()

    def _forget(self) -> None:
        lock, users = self._locks[self._room]
        if users == 1:
            del self._locks[self._room]
        else:
            self._locks[self._room] = (lock, users - 1)
