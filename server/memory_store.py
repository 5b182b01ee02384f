"""In-memory store: for tests and for servers that may forget on restart."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from itertools import islice

from .store import BinaryReply, LogEntry, RoomBounds, new_epoch


class MemoryStore:
    """Keeps everything in dicts; nothing survives the process.

    Room data is kept as the JSON text it arrives as, so a caller mutating
    its dict after a send cannot rewrite history. Each room's epoch is made
    the first time this store sees the room, so a new store (a restarted
    server) tells its clients that its offsets count in a new history.
    """

    settles_on_the_loop = True  # nothing to wait for (Store's docstring)

    def __init__(self) -> None:
        self._logs: dict[str, deque[LogEntry]] = {}
        self._bounds: dict[str, RoomBounds] = {}
        self._replies: dict[tuple[str, str], tuple[str | BinaryReply, float]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(self, room: str, type_: str, data_json: str, message_id: str, ts: float,
                     delivered: bool, max_messages: int, attachments: tuple[bytes, ...] = ()) -> LogEntry:
        bounds = self._room(room)
        entry = LogEntry(room, bounds.head + 1, message_id, type_, data_json, ts, attachments=tuple(attachments))
        log = self._logs.setdefault(room, deque())
        log.append(entry)
        floor = bounds.floor
        while len(log) > max_messages:
            floor = log.popleft().offset
        self._bounds[room] = RoomBounds(entry.offset, floor, entry.offset if delivered else bounds.delivered,
                                        bounds.epoch)
        return entry

    def _room(self, room: str) -> RoomBounds:
        bounds = self._bounds.get(room)
        if bounds is None:
            bounds = self._bounds[room] = RoomBounds(epoch=new_epoch())
        return bounds

    async def flushed(self, entry: LogEntry | None = None) -> None:
        return None

    async def read(self, room: str, after: int, limit: int) -> list[LogEntry]:
        log = self._logs.get(room)
        if not log:
            return []
        start = max(0, after - log[0].offset + 1)  # offsets in a log are consecutive
        return list(islice(log, start, start + limit))

    async def bounds(self, room: str) -> RoomBounds:
        return self._room(room)

    async def mark_delivered(self, room: str, offset: int) -> None:
        bounds = self._room(room)
        if offset > bounds.delivered:
            self._bounds[room] = replace(bounds, delivered=min(offset, bounds.head))

    async def drop_older_than(self, ts: float) -> int:
        dropped = 0
        for room, log in self._logs.items():
            floor = self._bounds[room].floor
            while log and log[0].ts < ts:
                floor = log.popleft().offset
                dropped += 1
            self._bounds[room] = replace(self._bounds[room], floor=floor)
        return dropped

    async def remember(self, principal: str, message_id: str, reply_json: str | BinaryReply, ts: float) -> None:
        self._replies[(principal, message_id)] = (reply_json, ts)

    async def recall(self, principal: str, message_id: str) -> str | BinaryReply | None:
        found = self._replies.get((principal, message_id))
        return None if found is None else found[0]

    async def forget_replies_before(self, ts: float) -> int:
        old = [key for key, (_, at) in self._replies.items() if at < ts]
        for key in old:
            del self._replies[key]
        return len(old)
