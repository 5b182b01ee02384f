"""The client's storage interface, and the in-memory store.

A store keeps three things, one record each so that a queue of thousands
stays cheap: outbox records (until acked), joined rooms with the offset of
the last handled message and the epoch (room history) it counts in, and
recently handled message ids. Backends:
``MemoryStore`` (here), ``SqliteStore`` (CPython), ``IndexedDBStore``
(browser). ``tests/unit/test_client_store_contract.py`` holds them all to the
same promises. A store says whether what it keeps outlives the process (or
the page) with a ``durable`` attribute, which ``SxClient.durable`` reads
(a store without one counts as not durable).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from .core import OutboxRecord


@dataclass
class StoredState:
    """Everything a client needs to resume: what it owes and where it was."""

    outbox: list[OutboxRecord] = field(default_factory=list)
    rooms: dict[str, int | None] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    epochs: dict[str, str] = field(default_factory=dict)  # room -> epoch its offset counts in
    client_id: str | None = None  # this client instance's id (the server keys resends by it)


class ClientStore(Protocol):
    async def load(self) -> StoredState:
        """Open the storage and return what it holds, outbox in send order."""

    async def add_outbox(self, record: OutboxRecord) -> None:
        """Persist one queued message; durable when this returns."""

    async def remove_outbox(self, record_ids: Collection[str]) -> None:
        """Forget messages whose acks arrived, in one write."""

    async def save_room(self, room: str, offset: int | None, epoch: str | None = None) -> None:
        """Remember a joined room, its position and the epoch it counts in (None: not known yet)."""

    async def remove_room(self, room: str) -> None:
        """Forget a room the client left."""

    async def save_client_id(self, client_id: str) -> None:
        """Keep the client's id with its outbox: the resends of those records are
        matched on the server by it, so clients sharing the storage share it."""

    async def mark_handled(self, room: str, offset: int, message_id: str) -> None:
        """Move a room's offset (its epoch stays) and remember the id, in one write."""

    def flush_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while flushing stored records, so that clients sharing the
        storage (browser tabs) do not flush the same records at once."""

    async def close(self) -> None:
        """Release the storage (the data stays)."""


@asynccontextmanager
async def no_lock() -> AsyncIterator[None]:
    """The flush lock of a store no other client shares."""
    yield


class MemoryStore:
    """Keeps the state for the life of the process only (the Shotx default)."""

    seen_limit = 1000
    durable = False

    def __init__(self) -> None:
        self.state = StoredState()

    async def load(self) -> StoredState:
        state = copy.deepcopy(self.state)
        state.outbox.sort(key=lambda record: record.seq)
        return state

    async def add_outbox(self, record: OutboxRecord) -> None:
        self.state.outbox.append(copy.deepcopy(record))

    async def remove_outbox(self, record_ids: Collection[str]) -> None:
        gone = set(record_ids)
        self.state.outbox = [r for r in self.state.outbox if r.id not in gone]

    async def save_room(self, room: str, offset: int | None, epoch: str | None = None) -> None:
        self.state.rooms[room] = offset
        if epoch is None:
            self.state.epochs.pop(room, None)
        else:
            self.state.epochs[room] = epoch

    async def remove_room(self, room: str) -> None:
        self.state.rooms.pop(room, None)
        self.state.epochs.pop(room, None)

    async def save_client_id(self, client_id: str) -> None:
        self.state.client_id = client_id

    async def mark_handled(self, room: str, offset: int, message_id: str) -> None:
        if room in self.state.rooms:
            self.state.rooms[room] = offset
        self.state.seen = [*self.state.seen, message_id][-self.seen_limit:]

    def flush_lock(self) -> AbstractAsyncContextManager[None]:
        return no_lock()

    async def close(self) -> None:
        return None
