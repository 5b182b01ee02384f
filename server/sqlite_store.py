"""SQLite store: the embedded default, one file in WAL mode, group commits.

Writes are grouped per loop turn and committed together, each keeping its
own outcome (``sqlite_commits.py`` says how and why); the file's tables and
upgrades are in ``sqlite_schema.py``. A sender never broadcasts what a crash
could still take back: it awaits ``flushed(entry)``. A failed write's group
reloads the cached bounds from the file, so what a failed append leaves is
either its offset handed out again (nothing above it was written) or a hole
in the room's offsets (an append above it in the same group was). An offset
handed out again is never delivered twice with different content: the
failed entry was never broadcast.

Remembered replies: ``remember`` adds its row to the group and returns once
that group is committed, raising only its own row's failure, so the acks of
one loop turn share one commit and an append that failed beside them does
not make them look lost. Until the commit a resend finds the reply among
the pending rows.

An append is one INSERT: a room's head and retention floor follow from its
log (the highest offset and the lowest one less one), and its delivered mark
from the highest entry flagged ``live``. The ``rooms`` row is written only
for what the log cannot tell: the room's epoch (once, when the store first
sees the room), a mark moved by a backlog delivery, the head and floor of a
log that retention by age may empty, and everything when the room leaves
the cache.

The cache of rooms' bounds is an LRU of ``room_cache`` rooms (a server that
sees a million rooms must not keep a million), so leaving it must lose
nothing: a room leaves with its rows below the floor deleted and its row
written, in the group of its last writes, and a room loaded again first runs
the group's pending writes (read your writes), so it reads back exactly the
bounds it left with.

Retention by count moves a room's floor with every append to a full room,
but rows below the floor are deleted ``RETENTION_SWEEP`` at a time (reads
never look below the floor), so a full room's append stays one INSERT. The
one visible effect: after a crash, up to that many rows older than the floor
may be kept until the next sweep, never fewer than promised. Retention by
age walks the rooms in key order and each room's oldest rows (a room's
offsets are in time order), reply expiry the ``replies_age`` index; each
takes a batch of rows at a time (``AGE_BATCH``, ``REPLY_BATCH``) and
commits it before the next, so a pass over a million rows lets the event
loop turn between batches (``bench/retention.py`` measures the stalls).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import OrderedDict
from dataclasses import replace
from itertools import takewhile
from pathlib import Path
from typing import Any

from shotx.client import binary

from . import sqlite_schema as sql
from .sqlite_commits import GroupCommit, Write
from .store import BinaryReply, LogEntry, RoomBounds, new_epoch

# How long open() waits for another process's lock on the file (seconds).
LOCK_TIMEOUT = 2.0
# Rows below a room's floor deleted in one statement (retention by count).
RETENTION_SWEEP = 100
# Rooms whose bounds are kept in memory (least recently used leave first).
ROOM_CACHE = 4096
# Old rows deleted per committed batch by retention by age, and by reply expiry.
AGE_BATCH = 500
AGE_ROOMS = 200  # rooms looked at per batch of retention by age (one key seek each)
REPLY_BATCH = 100


class SqliteStore:
    """Room logs and replies in one SQLite file that survives restarts.

    >>> store = SqliteStore("/tmp/shotx-doc.sqlite3")  # then ``await store.open()``
    """

    # Every call settles within the loop's turns (statements run on the loop; a write awaits
    # the next turn's group commit), so no timer around it can help (Store's docstring).
    settles_on_the_loop = True

    def __init__(self, path: str | Path, *, room_cache: int = ROOM_CACHE) -> None:
        self.path = str(path)
        self.room_cache = max(1, room_cache)
        self._db: sqlite3.Connection | None = None
        self.commits = GroupCommit(lambda: self.db, self._forget_cached_bounds)
        self._rooms: OrderedDict[str, RoomBounds] = OrderedDict()  # the LRU cache of bounds
        # What each cached room's ``rooms`` row holds, as far as this store knows: a room
        # that leaves the cache unchanged (only read, by joins) is not written again.
        self._in_file: dict[str, RoomBounds] = {}
        self._swept: dict[str, int] = {}  # per cached room: rows at or below this offset are deleted
        # Epochs made here whose row may not be in the file yet (a failed write writes the same one
        # again at the next load, so this process never shows two), with that write.
        self._new_epochs: OrderedDict[str, tuple[str, Write]] = OrderedDict()

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=LOCK_TIMEOUT)
        try:
            # Exclusive before the first access: SQLite then keeps the WAL index
            # in memory and takes no file lock per transaction (a quarter of a
            # room send's SQLite time), and a second server on the same file
            # fails here instead of both handing out the same offsets.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            sql.migrate(self._db, self.path)  # writes, so it takes the lock now
        except sqlite3.OperationalError as error:
            self._db.close()
            self._db = None
            if "locked" in str(error):
                raise RuntimeError(f"{self.path} is in use by another SqliteStore (another server?): "
                                   "one server process owns a SQLite store file") from error
            raise

    async def close(self) -> None:
        if self._db is None:
            return
        self._sweep_all()  # a clean shutdown leaves no row below a floor
        self.commits.commit()
        self._db.close()
        self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open: await store.open() first")
        return self._db

    @property
    def cached_rooms(self) -> int:
        """Rooms whose bounds are in memory now (at most ``room_cache``)."""
        return len(self._rooms)

    def _write(self, statement: str, params: tuple[Any, ...], entry: LogEntry | None = None) -> Write:
        return self.commits.add(statement, params, entry)

    def _forget_cached_bounds(self) -> None:
        """Heads handed out for failed appends may be ahead of the file: load them again."""
        self._rooms.clear()
        self._swept.clear()
        self._in_file.clear()

    def _room(self, room: str) -> RoomBounds:
        bounds = self._rooms.get(room)
        if bounds is not None:
            self._rooms.move_to_end(room)
            return bounds
        bounds = self._rooms[room] = self._load_room(room)
        while len(self._rooms) > self.room_cache:
            self._evict(*self._rooms.popitem(last=False))
        return bounds

    def _evict(self, room: str, bounds: RoomBounds) -> None:
        """A room leaves the cache: the file is told all it knew that it does not hold yet
        (see the module docstring)."""
        if bounds.floor > self._swept.pop(room, 0):
            self._write(sql.SWEEP, (room, bounds.floor))
        if self._in_file.pop(room, None) != bounds:
            self._write(sql.SAVE_ROOM, (room, bounds.head, bounds.floor, bounds.delivered, bounds.epoch))

    def _load_room(self, room: str) -> RoomBounds:
        """Bounds from the ``rooms`` row and the log (see the module docstring)."""
        self.commits.apply()  # the group's pending writes to this room count
        row = self.db.execute("SELECT head, floor, delivered, epoch FROM rooms WHERE room = ?",
                              (room,)).fetchone()
        saved = RoomBounds(*row[:3]) if row else RoomBounds()
        epoch = self._load_epoch(room, row[3] if row else None)
        if row is not None and row[3] is not None:
            self._in_file[room] = RoomBounds(row[0], row[1], row[2], row[3])
        lowest, highest = self.db.execute(
            "SELECT MIN(offset), MAX(offset) FROM room_log WHERE room = ?", (room,)).fetchone()
        if highest is None:  # an empty log: nothing was sent, or retention took it all
            self._swept[room] = saved.head
            return RoomBounds(saved.head, saved.head, min(saved.delivered, saved.head), epoch)
        self._swept[room] = lowest - 1
        live = self.db.execute("SELECT MAX(offset) FROM room_log WHERE room = ? AND live",
                               (room,)).fetchone()[0] or 0
        head = max(saved.head, highest)
        return RoomBounds(head, max(saved.floor, lowest - 1), min(max(saved.delivered, live), head), epoch)

    def _load_epoch(self, room: str, saved: str | None) -> str:
        """The room's epoch from its row; a room first seen now gets one, written once."""
        if saved is not None:
            self._new_epochs.pop(room, None)
            return saved
        made = self._new_epochs.pop(room, None)
        epoch = made[0] if made is not None else new_epoch()
        self._new_epochs[room] = (epoch, self._write(sql.SAVE_EPOCH, (room, epoch)))
        while True:  # oldest first: the ones written go (the one just made is not, so this stops)
            older, (_, write) = next(iter(self._new_epochs.items()))
            if not write.settled or write.error is not None:
                break
            del self._new_epochs[older]
        while len(self._new_epochs) > self.room_cache:  # failed writes linger: bounded anyway
            self._new_epochs.popitem(last=False)
        return epoch

    def _save_room(self, room: str, bounds: RoomBounds) -> Write:
        self._rooms[room] = self._in_file[room] = bounds
        return self._write(sql.SAVE_ROOM, (room, bounds.head, bounds.floor, bounds.delivered, bounds.epoch))

    async def append(self, room: str, type_: str, data_json: str, message_id: str, ts: float,
                     delivered: bool, max_messages: int, attachments: tuple[bytes, ...] = ()) -> LogEntry:
        bounds = self._room(room)
        entry = LogEntry(room, bounds.head + 1, message_id, type_, data_json, ts, attachments=tuple(attachments))
        self._write(sql.APPEND, (room, entry.offset, message_id, type_, data_json, ts, delivered,
                                 binary.pack(attachments) if attachments else None), entry)
        floor = max(bounds.floor, entry.offset - max_messages)
        if floor - self._swept.get(room, 0) >= RETENTION_SWEEP:
            self._sweep(room, floor)
        self._rooms[room] = RoomBounds(entry.offset, floor, entry.offset if delivered else bounds.delivered,
                                       bounds.epoch)
        return entry

    def _sweep_all(self) -> None:
        for room, bounds in self._rooms.items():
            if bounds.floor > self._swept.get(room, 0):
                self._sweep(room, bounds.floor)

    def _sweep(self, room: str, floor: int) -> Write:
        """Delete a room's rows at or below its floor (the log keeps newer ones, so it
        still tells the floor)."""
        self._swept[room] = floor
        return self._write(sql.SWEEP, (room, floor))

    async def flushed(self, entry: LogEntry | None = None) -> None:
        """Return once ``entry`` is durable, or raise why it never will be.

        Without an entry: once every write made before the call is committed,
        raising if an append of that commit failed (it cannot tell whose).
        """
        await self.commits.flushed(entry)

    async def read(self, room: str, after: int, limit: int) -> list[LogEntry]:
        self.commits.apply()  # read your writes: appends of this group, not committed yet
        after = max(after, self._room(room).floor)  # rows below it may wait for their sweep
        rows = self.db.execute(
            "SELECT offset, id, type, data, ts, attachments FROM room_log WHERE room = ? AND offset > ? "
            "ORDER BY offset LIMIT ?", (room, after, limit)).fetchall()
        return [LogEntry(room, offset, mid, type_, data, ts, attachments=binary.unpack(packed))
                for offset, mid, type_, data, ts, packed in rows]

    async def bounds(self, room: str) -> RoomBounds:
        return self._room(room)

    async def mark_delivered(self, room: str, offset: int) -> None:
        bounds = self._room(room)
        if offset > bounds.delivered:
            await self.commits.settled([self._save_room(room, replace(bounds, delivered=min(offset, bounds.head)))])

    async def drop_older_than(self, ts: float) -> int:
        """Retention by age: room after room in key order, each room's oldest rows while they
        are older than ``ts`` (as the other stores do), committed every ``AGE_BATCH`` rows or
        ``AGE_ROOMS`` rooms looked at, so that the loop turns between batches."""
        dropped, room, more, done = 0, "", False, False
        while not done:
            self.commits.apply()  # this group's appends count
            writes: list[Write] = []
            budget, looked = AGE_BATCH, 0
            while budget > 0 and looked < AGE_ROOMS:
                if not more:
                    found = self.db.execute(sql.NEXT_ROOM, (room,)).fetchone()
                    if found is None:
                        done = True
                        break
                    room = found[0]
                taken, counted, more = self._drop_oldest(room, ts, budget, writes)
                budget, looked, dropped = budget - taken, looked + 1, dropped + counted
            if writes:
                await self.commits.settled(writes)
            else:
                await asyncio.sleep(0)  # rooms looked at, nothing to drop: let the loop turn anyway
        return dropped

    def _drop_oldest(self, room: str, ts: float, limit: int, writes: list[Write]) -> tuple[int, int, bool]:
        """Delete the room's oldest rows older than ``ts`` (at most ``limit``) and raise its floor.

        Returns the rows taken, how many of them count (rows already below a
        cached room's floor, whose sweep is pending, are not dropped again),
        and whether the room may have more.
        """
        cached = self._rooms.get(room)
        floor = cached.floor if cached is not None else 0
        rows = self.db.execute(sql.OLDEST_ROWS, (room, -1, limit)).fetchall()
        old = list(takewhile(lambda row: row[1] < ts or row[0] <= floor, rows))
        if not old:
            return 0, 0, False
        top = old[-1][0]
        if cached is None:
            top_live = max((offset for offset, _, live in old if live), default=0)
            writes += [self._write(sql.SWEEP, (room, top)), self._write(sql.RAISE_FLOOR, (room, top, top, top_live))]
        else:
            self._swept[room] = max(self._swept.get(room, 0), top)
            writes += [self._write(sql.SWEEP, (room, top)),
                       self._save_room(room, replace(cached, floor=max(cached.floor, top)))]
        return len(old), sum(offset > floor for offset, _, _ in old), len(old) == len(rows) == limit

    async def remember(self, principal: str, message_id: str, reply_json: str | BinaryReply, ts: float) -> None:
        text, packed = ((reply_json.json, binary.pack(reply_json.attachments)) if isinstance(reply_json, BinaryReply)
                        else (reply_json, None))
        await self.commits.settled([self._write(sql.REMEMBER, (principal, message_id, text, ts, packed))])

    async def recall(self, principal: str, message_id: str) -> str | BinaryReply | None:
        for write in reversed(self.commits.unapplied()):  # not inserted yet
            params = write.params
            if write.sql is sql.REMEMBER and params[1] == message_id and params[0] == principal:
                return _reply(params[2], params[4])
        row = self.db.execute("SELECT reply, attachments FROM replies WHERE principal = ? AND id = ?",
                              (principal, message_id)).fetchone()
        return None if row is None else _reply(*row)

    async def forget_replies_before(self, ts: float) -> int:
        """Reply expiry, ``REPLY_BATCH`` rows of the ``ts`` index per committed batch."""
        forgotten = 0
        while True:
            self.commits.apply()  # pending replies count too
            keys = self.db.execute(sql.OLD_REPLIES, (ts, REPLY_BATCH)).fetchall()
            if keys:
                await self.commits.settled([self._write(sql.FORGET, (principal, message_id, ts))
                                            for principal, message_id in keys])
                forgotten += len(keys)
            if len(keys) < REPLY_BATCH:
                return forgotten


def _reply(text: Any, packed: bytes | None) -> str | BinaryReply:
    """A reply as it was remembered: its text, with its attachments if it had any."""
    return str(text) if packed is None else BinaryReply(str(text), binary.unpack(packed))
