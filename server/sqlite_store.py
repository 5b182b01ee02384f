"""SQLite store: the embedded default, one file in WAL mode, group commits.

Why synchronous calls on the event loop and not a thread or aiosqlite: an
insert into a WAL database with ``synchronous=NORMAL`` costs a few
microseconds, less than a hop to a thread and back. What costs is the
commit, so writes are grouped: every write made during one turn of the event
loop is kept in order and run in one transaction by a callback scheduled on
the next turn (with ``executemany`` for runs of one statement, and as a
plain autocommit statement when the group is a single write); each writer
awaits that commit before it reports success. A sender therefore never
broadcasts what a crash could still take back.

Each write keeps its own outcome. A read in the group's turn runs the
group's writes early, in the open transaction (read your writes), and the
commit runs the rest. If a statement fails (a constraint, or a value sqlite3
cannot bind, such as a lone surrogate: not only ``sqlite3.Error``), the
transaction is rolled back and the group is written again one write at a
time, each under a savepoint, so only the bad write fails; if the commit
itself fails, every write of it does. The failure is logged and reaches the
write's own writer (``flushed(entry)``, ``mark_delivered`` and the other
awaited writes), never a reader, and success is never reported for a write
that is not in the file. A failed write's group reloads the cached bounds
from the file, so what a failed append leaves is either its offset handed
out again (nothing above it was written) or a hole in the room's offsets
(an append above it in the same group was). An offset handed out again is
never delivered twice with different content: the failed entry was never
broadcast, as the server broadcasts an entry only after ``flushed`` returns
for it.

Remembered replies: ``remember`` adds its row to the group and returns; the
server then awaits ``flushed()`` before the ack leaves (``replies.py``), so
an acknowledged message is never run again after a crash, and the acks of
one loop turn share one commit. A group holding only replies that nobody
awaits waits up to ``REPLY_COMMIT_DELAY`` for company (any awaited write
brings the commit forward). Until the commit a resend still finds the reply
among the pending rows.

An append is one INSERT: a room's head and retention floor follow from its
log (the highest offset and the lowest one less one), and its delivered mark
from the highest entry flagged ``live``. The ``rooms`` row is written only
for what the log cannot tell: the room's epoch (once, when the store first
sees the room), a mark moved by a backlog delivery, and the head and floor
of a log that retention by age may empty. Opening a version 1 or 2 file
gives each of its rooms an epoch in the migration, so a history that was
there before the upgrade keeps one identity from then on.

Retention by count moves a room's floor with every append to a full room,
but rows below the floor are deleted ``RETENTION_SWEEP`` at a time (reads
never look below the floor), so a full room's append stays one INSERT. The
one visible effect: after a restart, up to that many rows older than the
floor may be kept until the next sweep, never fewer than promised.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import replace
from collections import OrderedDict
from itertools import groupby
from operator import attrgetter
from pathlib import Path
from typing import Any

from shotx.client import binary

from .store import BinaryReply, LogEntry, RoomBounds, new_epoch

log = logging.getLogger("shotx.server")

# 2: room_log.live, and rooms no longer written per append; 3: rooms.epoch;
# 4: room_log.attachments and replies.attachments (the bytes in data, binary.pack)
SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS room_log (
    room TEXT NOT NULL, offset INTEGER NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL, ts REAL NOT NULL, live INTEGER NOT NULL DEFAULT 0, attachments BLOB,
    PRIMARY KEY (room, offset)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY, head INTEGER NOT NULL, floor INTEGER NOT NULL,
    delivered INTEGER NOT NULL, epoch TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replies (
    principal TEXT NOT NULL, id TEXT NOT NULL, reply TEXT NOT NULL, ts REAL NOT NULL, attachments BLOB,
    PRIMARY KEY (principal, id)) WITHOUT ROWID;
"""

# A group of replies nobody awaits commits at most this late (seconds).
REPLY_COMMIT_DELAY = 0.05
# How long open() waits for another process's lock on the file (seconds).
LOCK_TIMEOUT = 2.0
# Rows below a room's floor deleted in one statement (retention by count).
RETENTION_SWEEP = 100
# Failed appends remembered for a late ``flushed(entry)`` (failures are rare; this bounds them).
FAILED_KEPT = 1000

_REMEMBER = "INSERT OR REPLACE INTO replies (principal, id, reply, ts, attachments) VALUES (?, ?, ?, ?, ?)"
_SAVE_ROOM = ("INSERT INTO rooms (room, head, floor, delivered, epoch) VALUES (?, ?, ?, ?, ?) "
              "ON CONFLICT(room) DO UPDATE SET head = excluded.head, floor = excluded.floor, "
              "delivered = excluded.delivered, epoch = coalesce(rooms.epoch, excluded.epoch)")
# A room's epoch is written once; head, floor and mark 0 add nothing to what the log tells.
_SAVE_EPOCH = ("INSERT INTO rooms (room, head, floor, delivered, epoch) VALUES (?, 0, 0, 0, ?) "
               "ON CONFLICT(room) DO UPDATE SET epoch = excluded.epoch WHERE rooms.epoch IS NULL")
# Version 1 and 2 files: every room with a log gets a row, and every row an epoch.
_GIVE_EPOCHS = """
INSERT INTO rooms (room, head, floor, delivered)
    SELECT DISTINCT room, 0, 0, 0 FROM room_log WHERE room NOT IN (SELECT room FROM rooms);
UPDATE rooms SET epoch = lower(hex(randomblob(8))) WHERE epoch IS NULL;
"""


class _Write:
    """One statement of a group, with its outcome once the group is done."""

    __slots__ = ("sql", "params", "entry", "error", "settled")

    def __init__(self, sql: str, params: tuple[Any, ...], entry: LogEntry | None = None) -> None:
        self.sql, self.params, self.entry = sql, params, entry
        self.error: Exception | None = None
        self.settled = False  # its group is committed or rolled back: ``error`` is final


def _key(entry: LogEntry) -> tuple[str, int, str]:
    return entry.room, entry.offset, entry.id  # with the id: an offset may be handed out again


class SqliteStore:
    """Room logs and replies in one SQLite file that survives restarts.

    >>> store = SqliteStore("/tmp/shotx-doc.sqlite3")  # then ``await store.open()``
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None
        self._rooms: dict[str, RoomBounds] = {}
        self._epochs: dict[str, str] = {}  # never cleared: a reload after a failed commit keeps them
        self._swept: dict[str, int] = {}  # per room: rows at or below this offset are deleted
        self._commit_scheduled = False
        self._commit_lazy = False
        self._commit_handle: asyncio.Handle | None = None
        self._pending: list[_Write] = []  # writes of this group, in order (run or not yet)
        self._applied = 0  # how many of them ran in the open transaction
        # made by the first writer that waits; its result: the group's first failed append's error
        self._group_done: asyncio.Future[Exception | None] | None = None
        self._appends: dict[tuple[str, int, str], _Write] = {}  # this group's appends
        self._failed: OrderedDict[tuple[str, int, str], Exception] = OrderedDict()

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
            self._migrate()  # writes, so it takes the lock now
        except sqlite3.OperationalError as error:
            self._db.close()
            self._db = None
            if "locked" in str(error):
                raise RuntimeError(f"{self.path} is in use by another SqliteStore (another server?): "
                                   "one server process owns a SQLite store file") from error
            raise

    def _migrate(self) -> None:
        """Create the tables, or bring a version 1 (no ``live`` column) or 2 (no
        ``epoch``) file up to date, in one transaction."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema version {version}; this Shotx knows up to "
                               f"{SCHEMA_VERSION}: upgrade Shotx or use another file")
        self.db.executescript(_SCHEMA)
        self.db.execute("BEGIN")
        if version < SCHEMA_VERSION:
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(room_log)")}
            if "live" not in columns:  # version 1 kept every mark in ``rooms``, which still holds
                self.db.execute("ALTER TABLE room_log ADD COLUMN live INTEGER NOT NULL DEFAULT 0")
            if "epoch" not in {row[1] for row in self.db.execute("PRAGMA table_info(rooms)")}:
                self.db.execute("ALTER TABLE rooms ADD COLUMN epoch TEXT")
            for table in ("room_log", "replies"):  # version 3 and older: no bytes were ever stored
                if "attachments" not in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN attachments BLOB")
            for statement in filter(str.strip, _GIVE_EPOCHS.split(";")):
                self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # a write even when current
        self.db.execute("COMMIT")

    async def close(self) -> None:
        if self._db is None:
            return
        self._sweep_all()  # a clean shutdown leaves no row below a floor
        if self._commit_scheduled:
            self._commit()
        if self._commit_handle is not None:
            self._commit_handle.cancel()
        self._db.close()
        self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("SqliteStore is not open: await store.open() first")
        return self._db

    def _write(self, sql: str, params: tuple[Any, ...], entry: LogEntry | None = None,
               wait: float = 0.0) -> _Write:
        """Add a write to the current group; it runs when the group commits (or a read runs it)."""
        write = _Write(sql, params, entry)
        self._pending.append(write)
        if entry is not None:
            self._appends[_key(entry)] = write
        self._schedule_commit(wait)
        return write

    def _schedule_commit(self, wait: float) -> None:
        """Make sure the group commits: on the next loop turn, or after ``wait``.

        ``wait`` > 0 lets a group nobody awaits (replies only) wait that long
        for company; a later write with ``wait=0`` brings it forward.
        """
        if not self._commit_scheduled:
            self._commit_scheduled = True
            loop = asyncio.get_running_loop()
            self._commit_handle = loop.call_later(wait, self._commit) if wait else loop.call_soon(self._commit)
            self._commit_lazy = bool(wait)
        elif self._commit_lazy and not wait:
            if self._commit_handle is not None:
                self._commit_handle.cancel()
            self._commit_handle = asyncio.get_running_loop().call_soon(self._commit)
            self._commit_lazy = False

    def _apply(self) -> None:
        """Run the group's writes not run yet, in its open transaction. Never raises:
        a failure goes to the failed write (see the module docstring)."""
        todo = self._pending[self._applied:]
        if not todo:
            return
        try:
            if not self.db.in_transaction:
                self.db.execute("BEGIN")
            for sql, run in groupby(todo, key=attrgetter("sql")):
                self.db.executemany(sql, [write.params for write in run])
        except Exception as error:
            log.error("SQLite write failed, its group is written again one write at a time: %r", error)
            self._write_one_by_one()
        self._applied = len(self._pending)

    def _write_one_by_one(self) -> None:
        """Roll the transaction back and run each write of the group under its own savepoint."""
        self._forget_cached_bounds()
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.execute("BEGIN")
            for write in self._pending:
                if write.error is None:
                    self.db.execute("SAVEPOINT one_write")
                    try:
                        self.db.execute(write.sql, write.params)
                    except Exception as error:
                        log.error("SQLite write refused: %r (%.80s)", error, write.sql)
                        write.error = error
                        self.db.execute("ROLLBACK TO one_write")
                    self.db.execute("RELEASE one_write")
        except Exception as error:  # the connection itself fails: nothing of the group is made
            self._fail_all(error)

    def _fail_all(self, error: Exception) -> None:
        """Nothing of the group is in the file: every write of it failed with ``error``."""
        log.error("SQLite commit failed, all %d writes of its group are rolled back: %r", len(self._pending), error)
        for write in self._pending:
            write.error = write.error or error
        self._forget_cached_bounds()
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except Exception as failure:  # the connection may be broken; the writers still hear of it
            log.error("SQLite rollback failed: %r", failure)

    def _forget_cached_bounds(self) -> None:
        """Heads handed out for failed appends may be ahead of the file: load them again."""
        self._rooms.clear()
        self._swept.clear()

    def _commit(self) -> None:
        if not self._commit_scheduled:
            return
        self._commit_scheduled = False
        try:
            if len(self._pending) == 1 and not self.db.in_transaction:
                self._commit_alone(self._pending[0])
            else:
                self._apply()
                if self.db.in_transaction:
                    self.db.execute("COMMIT")
        except BaseException as error:  # even an interrupt: no write is reported made that was not
            self._fail_all(error if isinstance(error, Exception) else RuntimeError(f"commit interrupted: {error!r}"))
            if not isinstance(error, Exception):
                raise
        finally:
            self._settle()

    def _commit_alone(self, write: _Write) -> None:
        """One write: its own (autocommit) transaction."""
        try:
            self.db.execute(write.sql, write.params)
        except Exception as error:
            log.error("SQLite write failed: %r (%.80s)", error, write.sql)
            write.error = error
            self._forget_cached_bounds()

    def _settle(self) -> None:
        """The group is done: its outcomes are final; wake its writers; start a new group."""
        group, done = self._pending, self._group_done
        self._pending, self._applied, self._group_done, self._appends = [], 0, None, {}
        first_failed: Exception | None = None
        for write in group:
            write.settled = True
            if write.error is not None and write.entry is not None:
                self._failed[_key(write.entry)] = write.error
                first_failed = first_failed or write.error
        while len(self._failed) > FAILED_KEPT:
            self._failed.popitem(last=False)
        if done is not None and not done.done():
            done.set_result(first_failed)

    async def _group_settled(self) -> Exception | None:
        """Wait until the current group is done; its first failed append's error, if any."""
        if self._group_done is None:
            self._group_done = asyncio.get_running_loop().create_future()
        done = self._group_done
        self._schedule_commit(0.0)  # a reply-only group waiting for company commits now
        # The commit was queued (call_soon) before this task yields, so it runs
        # first in the next turn and this task resumes in that same turn, done:
        # one loop turn per write instead of two (commit, then wake-up).
        await asyncio.sleep(0)
        return await done

    async def _settled(self, writes: list[_Write]) -> None:
        """Wait for the group of ``writes`` (all of one group) to be done; raise the first one's error."""
        if writes and not writes[0].settled:
            await self._group_settled()
        for write in writes:
            if write.error is not None:
                raise write.error

    def _room(self, room: str) -> RoomBounds:
        bounds = self._rooms.get(room)
        if bounds is None:
            bounds = self._rooms[room] = self._load_room(room)
        return bounds

    def _load_room(self, room: str) -> RoomBounds:
        """Bounds from the ``rooms`` row and the log (see the module docstring)."""
        row = self.db.execute("SELECT head, floor, delivered, epoch FROM rooms WHERE room = ?",
                              (room,)).fetchone()
        saved = RoomBounds(*row[:3]) if row else RoomBounds()
        epoch = self._load_epoch(room, row[3] if row else None)
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
        """The room's epoch from its row; a room first seen now gets one, written once.

        A new epoch whose write failed (its group rolled back) is written again
        at the next load, the same one, so this process never shows two.
        """
        if saved is None:
            saved = self._epochs.get(room) or new_epoch()
            self._write(_SAVE_EPOCH, (room, saved))
        self._epochs[room] = saved
        return saved

    def _save_room(self, room: str, bounds: RoomBounds) -> _Write:
        self._rooms[room] = bounds
        return self._write(_SAVE_ROOM, (room, bounds.head, bounds.floor, bounds.delivered, bounds.epoch))

    async def append(self, room: str, type_: str, data_json: str, message_id: str, ts: float,
                     delivered: bool, max_messages: int, attachments: tuple[bytes, ...] = ()) -> LogEntry:
        bounds = self._room(room)
        entry = LogEntry(room, bounds.head + 1, message_id, type_, data_json, ts, attachments=tuple(attachments))
        self._write("INSERT INTO room_log (room, offset, id, type, data, ts, live, attachments) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (room, entry.offset, message_id, type_, data_json, ts, delivered,
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

    def _sweep(self, room: str, floor: int) -> _Write:
        """Delete a room's rows at or below its floor (the log keeps newer ones, so it
        still tells the floor)."""
        self._swept[room] = floor
        return self._write("DELETE FROM room_log WHERE room = ? AND offset <= ?", (room, floor))

    async def flushed(self, entry: LogEntry | None = None) -> None:
        """Return once ``entry`` is durable, or raise why it never will be.

        Without an entry: once every write made before the call is committed,
        raising if an append of that commit failed (it cannot tell whose).
        """
        if entry is None:
            failed = await self._group_settled() if self._pending else None
            if failed is not None:
                raise failed
            return
        write = self._appends.get(_key(entry))
        if write is not None:
            await self._settled([write])
        elif _key(entry) in self._failed:
            raise self._failed[_key(entry)]

    async def read(self, room: str, after: int, limit: int) -> list[LogEntry]:
        self._apply()  # read your writes: appends of this group, not committed yet
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
            await self._settled([self._save_room(room, replace(bounds, delivered=min(offset, bounds.head)))])

    async def drop_older_than(self, ts: float) -> int:
        self._sweep_all()  # rows retention by count dropped already are not this pass's
        self._apply()
        old = self.db.execute(
            "SELECT room, MAX(offset), COUNT(*) FROM room_log WHERE ts < ? GROUP BY room", (ts,)).fetchall()
        writes = []
        for room, highest, _ in old:
            bounds = self._room(room)
            writes.append(self._sweep(room, highest))
            writes.append(self._save_room(room, replace(bounds, floor=max(bounds.floor, highest))))
        await self._settled(writes)
        return sum(count for _, _, count in old)

    async def remember(self, principal: str, message_id: str, reply_json: str | BinaryReply, ts: float) -> None:
        text, packed = ((reply_json.json, binary.pack(reply_json.attachments)) if isinstance(reply_json, BinaryReply)
                        else (reply_json, None))
        self._write(_REMEMBER, (principal, message_id, text, ts, packed), wait=REPLY_COMMIT_DELAY)

    async def recall(self, principal: str, message_id: str) -> str | BinaryReply | None:
        for write in reversed(self._pending[self._applied:]):  # not inserted yet
            params = write.params
            if write.sql is _REMEMBER and params[1] == message_id and params[0] == principal:
                return _reply(params[2], params[4])
        row = self.db.execute("SELECT reply, attachments FROM replies WHERE principal = ? AND id = ?",
                              (principal, message_id)).fetchone()
        return None if row is None else _reply(*row)

    async def forget_replies_before(self, ts: float) -> int:
        self._apply()  # pending replies count too
        count = self.db.execute("SELECT COUNT(*) FROM replies WHERE ts < ?", (ts,)).fetchone()[0]
        if count:
            await self._settled([self._write("DELETE FROM replies WHERE ts < ?", (ts,))])
        return int(count)


def _reply(text: Any, packed: bytes | None) -> str | BinaryReply:
    """A reply as it was remembered: its text, with its attachments if it had any."""
    return str(text) if packed is None else BinaryReply(str(text), binary.unpack(packed))
