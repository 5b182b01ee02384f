"""Browser store: IndexedDB, one record per queued message, plus a Web Lock.

Object stores (database ``shotx`` by default, version 1):

* ``outbox``  ``{id, seq, json[, attachments]}``: one record per
  unacknowledged message; bytes in its data are an array of ``Uint8Array``
  (structured-cloned, binary), named by placeholders in ``json``
  (``shotx.client.binary``), not base64 text;
* ``rooms``   ``{room, offset, epoch}``: joined rooms, the last handled offset
  and the room history (epoch) it counts in;
* ``seen``    ``{n, id}``: recently handled message ids, trimmed to a bound.

The client's id lives in ``rooms`` under a key no room can have (room names
hold no control characters): a store of its own would need a version
upgrade, which an open tab of an older page blocks.

IndexedDB commits a transaction as soon as control returns to the event loop,
and Pyodide resumes a coroutine in a later task, so every operation here
issues all of its requests synchronously and then awaits the transaction's
completion once (a promise made by a small JavaScript helper, so no Python
proxy is involved).

Failures surface. Where IndexedDB cannot be opened (no ``indexedDB``, some
private windows, embedded browsers) the store falls back to memory, logs
``IndexedDB unavailable`` once and reports ``durable`` False, so the page
keeps working live and the application can tell its user that offline
sends will not survive a reload. A write of a queued send the browser
refuses for its quota (``QuotaExceededError``) aborts its transaction, so
nothing of it is stored, and raises :class:`~shotx.client.errors.OutboxFull`
(reason ``"quota"``) from ``send()``/``queue()``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

import js  # type: ignore[import-not-found]

from . import binary
from .core import OutboxRecord
from .errors import OutboxFull
from .js_transport import from_js_bytes, to_js_bytes, to_js_value, to_py_value
from .store import MemoryStore, StoredState

CLIENT_ID_KEY = "\x00client-id"  # in ``rooms``; see the module docstring

log = logging.getLogger("shotx.client")

_OPEN = js.Function.new("name", """
  return new Promise((resolve, reject) => {
    if (!globalThis.indexedDB) { reject(new Error("IndexedDB is not available")); return; }
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("outbox", { keyPath: "id" });
      db.createObjectStore("rooms", { keyPath: "room" });
      db.createObjectStore("seen", { keyPath: "n" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error("IndexedDB open blocked"));
  });""")

# Rejects with an Error, not the transaction's DOMException: Pyodide's future cannot
# take a DOMException as an exception ("TypeError: invalid exception object" on the
# page, and the awaiting coroutine never resumed). The name is kept (QuotaExceededError).
_DONE = js.Function.new("tx", """
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => {
      const cause = tx.error;
      const error = new Error(cause ? `${cause.name}: ${cause.message}` : "IndexedDB transaction aborted");
      error.name = cause ? cause.name : "AbortError";
      reject(error);
    };
  });""")

_LOCK = js.Function.new("name", """
  return new Promise((acquired) => {
    if (!(globalThis.navigator && navigator.locks)) { acquired(() => {}); return; }
    navigator.locks.request(name, () => new Promise((release) => acquired(release)));
  });""")


class IndexedDBStore:
    """``SxClient(url)`` in the browser uses this; ``IndexedDBStore("app")`` names the database."""

    seen_limit = 1000

    def __init__(self, name: str = "shotx") -> None:
        self.name = name
        self._db: Any = None
        self._fallback: MemoryStore | None = None
        self._next_seen = 1

    @property
    def durable(self) -> bool:
        """False once the database could not be opened (state in memory only)."""
        return self._fallback is None

    async def _opened(self) -> MemoryStore | None:
        """Open the database on first use; the memory fallback if it cannot be opened."""
        if self._db is None and self._fallback is None:
            try:
                self._db = await _OPEN(self.name)
            except Exception as error:  # JsException: private mode, quota, blocked
                log.warning("IndexedDB unavailable (%s): queued messages live in memory only", error)
                self._fallback = MemoryStore()
                return self._fallback
            keys, = await self._run(["seen"], "readonly", lambda tx: [tx.objectStore("seen").getAllKeys()])
            self._next_seen = max(to_py_value(keys), default=0) + 1  # a write before load() must not reuse one
        return self._fallback

    async def load(self) -> StoredState:
        if (fallback := await self._opened()) is not None:
            return await fallback.load()
        outbox, rooms, seen = await self._run(["outbox", "rooms", "seen"], "readonly", lambda tx: [
            tx.objectStore("outbox").getAll(), tx.objectStore("rooms").getAll(), tx.objectStore("seen").getAll()])
        records = [_record(row) for row in outbox]  # JS rows: their Uint8Arrays must not go through JSON
        records.sort(key=lambda record: (record.seq, record.id))
        seen_rows = to_py_value(seen)
        self._next_seen = max((row["n"] for row in seen_rows), default=0) + 1
        all_rows = to_py_value(rooms)
        client = next((r.get("client_id") for r in all_rows if r["room"] == CLIENT_ID_KEY), None)
        room_rows = [r for r in all_rows if r["room"] != CLIENT_ID_KEY]
        return StoredState(records, {r["room"]: r.get("offset") for r in room_rows},
                           [row["id"] for row in sorted(seen_rows, key=lambda row: row["n"])],
                           {r["room"]: r["epoch"] for r in room_rows if isinstance(r.get("epoch"), str)},
                           client if isinstance(client, str) else None)

    async def _run(self, names: list[str], mode: str, issue: Any) -> list[Any]:
        """Issue every request of one transaction, then await its completion once."""
        tx = self._db.transaction(to_js_value(names), mode)
        requests = issue(tx)
        await _DONE(tx)
        return [request.result for request in requests]

    async def add_outbox(self, record: OutboxRecord) -> None:
        if (fallback := await self._opened()) is not None:
            return await fallback.add_outbox(record)
        text, attachments = binary.encode(record.to_dict())
        row = to_js_value({"id": record.id, "seq": record.seq, "json": text})
        if attachments:
            row.attachments = to_js_bytes(attachments)
        try:
            await self._run(["outbox"], "readwrite", lambda tx: [tx.objectStore("outbox").put(row)])
        except Exception as error:  # JsException; the aborted transaction stored nothing
            if not is_quota_error(error):
                raise
            raise OutboxFull("quota", f"OUTBOX_FULL: the browser's storage quota is used up ({error})") from None

    async def remove_outbox(self, record_ids: Collection[str]) -> None:
        if (fallback := await self._opened()) is not None:
            return await fallback.remove_outbox(record_ids)

        def issue(tx: Any) -> list[Any]:
            outbox = tx.objectStore("outbox")
            return [outbox.delete(record_id) for record_id in record_ids]

        await self._run(["outbox"], "readwrite", issue)

    async def save_room(self, room: str, offset: int | None, epoch: str | None = None) -> None:
        if (fallback := await self._opened()) is not None:
            return await fallback.save_room(room, offset, epoch)
        row = to_js_value({"room": room, "offset": offset, "epoch": epoch})
        await self._run(["rooms"], "readwrite", lambda tx: [tx.objectStore("rooms").put(row)])

    async def remove_room(self, room: str) -> None:
        if (fallback := await self._opened()) is not None:
            return await fallback.remove_room(room)
        await self._run(["rooms"], "readwrite", lambda tx: [tx.objectStore("rooms").delete(room)])

    async def save_client_id(self, client_id: str) -> None:
        if (fallback := await self._opened()) is not None:
            return await fallback.save_client_id(client_id)
        row = to_js_value({"room": CLIENT_ID_KEY, "client_id": client_id})
        await self._run(["rooms"], "readwrite", lambda tx: [tx.objectStore("rooms").put(row)])

    async def mark_handled(self, room: str, offset: int, message_id: str) -> None:
        if (fallback := await self._opened()) is not None:
            return await fallback.mark_handled(room, offset, message_id)
        n, self._next_seen = self._next_seen, self._next_seen + 1
        seen_row = to_js_value({"n": n, "id": message_id})
        too_old = js.IDBKeyRange.upperBound(n - self.seen_limit)

        def issue(tx: Any) -> list[Any]:
            requests = [tx.objectStore("seen").put(seen_row), tx.objectStore("seen").delete(too_old)]
            rooms = tx.objectStore("rooms")
            cursor = rooms.get(room)  # only move the offset of a room still joined; its epoch stays
            cursor.onsuccess = _SET_OFFSET_IF_PRESENT(rooms, offset)
            return [*requests, cursor]

        await self._run(["rooms", "seen"], "readwrite", issue)

    @asynccontextmanager
    async def flush_lock(self) -> AsyncIterator[None]:
        """One tab at a time flushes the shared outbox (Web Locks API)."""
        release = await _LOCK(f"shotx-outbox:{self.name}")
        try:
            yield
        finally:
            release()

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _record(row: Any) -> OutboxRecord:
    """An outbox row read from IndexedDB (a JavaScript object) as a record."""
    return OutboxRecord.from_dict(binary.decode(str(row.json), from_js_bytes(getattr(row, "attachments", None))))


def is_quota_error(error: BaseException) -> bool:
    """Is this IndexedDB's ``QuotaExceededError`` (a DOMException, seen through Pyodide's JsException)?"""
    return getattr(error, "name", None) == "QuotaExceededError" or "QuotaExceededError" in str(error)


_SET_OFFSET_IF_PRESENT = js.Function.new("store", "offset", """
  return (event) => {
    const row = event.target.result;
    if (row !== undefined) { row.offset = offset; store.put(row); }
  };""")
