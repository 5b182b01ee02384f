"""The SQLite store's file: its tables, indexes, statements and upgrades.

Schema 4 (``PRAGMA user_version``; 4 added ``attachments``, the bytes in a
message's or reply's data as ``binary.pack`` makes them, beside the JSON text
with their placeholders): ``room_log`` keyed by (room, offset),
``rooms`` (a room's epoch, and the head, floor and delivered mark where the
log cannot tell them), ``replies`` keyed by (id, principal) with the ``ts``
index ``replies_age``.

Retention by count and by age walk ``room_log``'s key (a room's offsets are
in time order, so its oldest rows come first); reply expiry walks
``replies_age``; both a batch at a time, so neither scans a table.
``replies`` is keyed by id first because our client's ids are UUIDv7,
which sort by time: replies that expire together sit together in the table
too (keyed by principal first, every expired reply was on a page of its
own, and a pass spent its time in WAL checkpoints). There is no ``ts``
index on ``room_log`` for the same reason: deletes in time order across
rooms dirty a page per row, and every append would pay for the index.

A file of an earlier layout is brought to this one at open: its replies
re-keyed (a copy of the table, once), the index made. Neither needs a new
version: an older Shotx of schema 3 asks these tables the same questions
and SQLite keeps the index up to date for it.
"""

from __future__ import annotations

import sqlite3

# 2: room_log.live, and rooms no longer written per append; 3: rooms.epoch;
# 4: room_log.attachments and replies.attachments (bytes in data)
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
    PRIMARY KEY (id, principal)) WITHOUT ROWID;
"""
# Files whose replies are keyed (principal, id): the same rows, keyed (id, principal).
_REKEY_REPLIES = """
CREATE TABLE replies_by_id (
    principal TEXT NOT NULL, id TEXT NOT NULL, reply TEXT NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (id, principal)) WITHOUT ROWID;
INSERT INTO replies_by_id (principal, id, reply, ts) SELECT principal, id, reply, ts FROM replies;
DROP TABLE replies;
ALTER TABLE replies_by_id RENAME TO replies;
"""
_INDEXES = """
CREATE INDEX IF NOT EXISTS replies_age ON replies (ts);
"""
# Version 1 and 2 files: every room with a log gets a row, and every row an epoch.
_GIVE_EPOCHS = """
INSERT INTO rooms (room, head, floor, delivered)
    SELECT DISTINCT room, 0, 0, 0 FROM room_log WHERE room NOT IN (SELECT room FROM rooms);
UPDATE rooms SET epoch = lower(hex(randomblob(8))) WHERE epoch IS NULL;
"""

APPEND = ("INSERT INTO room_log (room, offset, id, type, data, ts, live, attachments) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
SWEEP = "DELETE FROM room_log WHERE room = ? AND offset <= ?"
REMEMBER = "INSERT OR REPLACE INTO replies (principal, id, reply, ts, attachments) VALUES (?, ?, ?, ?, ?)"
# By key and age: a reply remembered again since the batch was read stays.
FORGET = "DELETE FROM replies WHERE principal = ? AND id = ? AND ts < ?"
# The next room with a log after ``?`` (one seek on the key: a loose index scan by hand).
NEXT_ROOM = "SELECT room FROM room_log WHERE room > ? ORDER BY room LIMIT 1"
OLDEST_ROWS = "SELECT offset, ts, live FROM room_log WHERE room = ? AND offset > ? ORDER BY offset LIMIT ?"
OLD_REPLIES = "SELECT principal, id FROM replies WHERE ts < ? ORDER BY ts LIMIT ?"
SAVE_ROOM = ("INSERT INTO rooms (room, head, floor, delivered, epoch) VALUES (?, ?, ?, ?, ?) "
             "ON CONFLICT(room) DO UPDATE SET head = excluded.head, floor = excluded.floor, "
             "delivered = excluded.delivered, epoch = coalesce(rooms.epoch, excluded.epoch)")
# Retention by age of a room that may not be cached: its row only moves forward.
RAISE_FLOOR = ("INSERT INTO rooms (room, head, floor, delivered, epoch) VALUES (?, ?, ?, ?, NULL) "
               "ON CONFLICT(room) DO UPDATE SET head = max(head, excluded.head), "
               "floor = max(floor, excluded.floor), delivered = max(delivered, excluded.delivered)")
# A room's epoch is written once; head, floor and mark 0 add nothing to what the log tells.
SAVE_EPOCH = ("INSERT INTO rooms (room, head, floor, delivered, epoch) VALUES (?, 0, 0, 0, ?) "
              "ON CONFLICT(room) DO UPDATE SET epoch = excluded.epoch WHERE rooms.epoch IS NULL")


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Create the tables and indexes, or bring a version 1 (no ``live`` column) or
    2 (no ``epoch``) file up to date, in one transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has schema version {version}; this Shotx knows up to "
                           f"{SCHEMA_VERSION}: upgrade Shotx or use another file")
    db.executescript(_SCHEMA)
    db.execute("BEGIN")
    if version < SCHEMA_VERSION:
        columns = {row[1] for row in db.execute("PRAGMA table_info(room_log)")}
        if "live" not in columns:  # version 1 kept every mark in ``rooms``, which still holds
            db.execute("ALTER TABLE room_log ADD COLUMN live INTEGER NOT NULL DEFAULT 0")
        if "epoch" not in {row[1] for row in db.execute("PRAGMA table_info(rooms)")}:
            db.execute("ALTER TABLE rooms ADD COLUMN epoch TEXT")
        for statement in filter(str.strip, _GIVE_EPOCHS.split(";")):
            db.execute(statement)
    if {row[1]: row[5] for row in db.execute("PRAGMA table_info(replies)")}.get("principal") == 1:
        for statement in filter(str.strip, _REKEY_REPLIES.split(";")):
            db.execute(statement)
    for table in ("room_log", "replies"):  # version 3 and older (re-keyed above): no bytes were ever stored
        if "attachments" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN attachments BLOB")
    for statement in filter(str.strip, _INDEXES.split(";")):  # after the tables they index
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")  # a write even when current
    db.execute("COMMIT")
