"""SQLite client store for CPython: bots, workers and tests that must resume.

Plain ``sqlite3`` calls on the event loop: a local insert is microseconds,
less than a thread hop. Each call commits, because a queued send must be on
disk before ``send()`` goes on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from . import binary
from .core import OutboxRecord
from .store import StoredState, no_lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL,
                                   attachments BLOB);
CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, offset INTEGER, epoch TEXT);
CREATE TABLE IF NOT EXISTS seen (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteStore:
    """``SxClient(url, store=SqliteStore("client.sqlite3"))`` or ``store="client.sqlite3"``."""

    seen_limit = 1000
    durable = True

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(rooms)")}
            if "epoch" not in columns:  # a file from before room epochs: its offsets keep counting
                self._db.execute("ALTER TABLE rooms ADD COLUMN epoch TEXT")
            if "attachments" not in {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}:
                self._db.execute("ALTER TABLE outbox ADD COLUMN attachments BLOB")  # a file from before bytes
        return self._db

    async def load(self) -> StoredState:
        outbox = [OutboxRecord.from_dict(binary.decode(raw, binary.unpack(packed)))
                  for raw, packed in self.db.execute("SELECT record, attachments FROM outbox ORDER BY seq")]
        rows = self.db.execute("SELECT room, offset, epoch FROM rooms").fetchall()
        seen = [mid for (mid,) in self.db.execute("SELECT id FROM seen ORDER BY n")]
        client = self.db.execute("SELECT value FROM meta WHERE key = 'client_id'").fetchone()
        return StoredState(outbox, {room: offset for room, offset, _ in rows}, seen,
                           {room: epoch for room, _, epoch in rows if epoch is not None},
                           None if client is None else str(client[0]))

    async def add_outbox(self, record: OutboxRecord) -> None:
        text, attachments = binary.encode(record.to_dict())  # bytes in the data: a BLOB, not text
        self.db.execute("INSERT OR REPLACE INTO outbox (id, seq, record, attachments) VALUES (?, ?, ?, ?)",
                        (record.id, record.seq, text, binary.pack(attachments) if attachments else None))

    async def remove_outbox(self, record_ids: Collection[str]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("DELETE FROM outbox WHERE id = ?", [(record_id,) for record_id in record_ids])

    async def save_room(self, room: str, offset: int | None, epoch: str | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO rooms (room, offset, epoch) VALUES (?, ?, ?)", (room, offset, epoch))

    async def remove_room(self, room: str) -> None:
        self.db.execute("DELETE FROM rooms WHERE room = ?", (room,))

    async def save_client_id(self, client_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('client_id', ?)", (client_id,))

    async def mark_handled(self, room: str, offset: int, message_id: str) -> None:
        with self.db:  # one transaction: the offset never moves without the id
            self.db.execute("BEGIN")
            self.db.execute("UPDATE rooms SET offset = ? WHERE room = ?", (offset, room))
            self.db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (message_id,))
            self.db.execute("DELETE FROM seen WHERE n <= (SELECT MAX(n) FROM seen) - ?", (self.seen_limit,))

    def flush_lock(self) -> AbstractAsyncContextManager[None]:
        """Processes sharing a file may both flush; the server dedups resends."""
        return no_lock()

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
