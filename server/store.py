"""The server's storage interface: room logs and remembered replies.

One small async interface, one file per backend (``memory_store.py``,
``sqlite_store.py``, ``redis_store.py``). The server never looks behind it, so a backend only has
to keep the promises written on :class:`Store`; the contract test in
``tests/integration/test_store_contract.py`` runs against every backend.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from shotx.client import binary


@dataclass(frozen=True)
class LogEntry:
    """One room message as stored; ``offset`` counts from 1 per room.

    The data stays JSON text: the server encodes it once, and the same text
    goes to the log, to live members and to replays, never decoded on the way.
    """

    room: str
    offset: int
    id: str
    type: str
    data_json: str
    ts: float
    # The history it belongs to (RoomBounds.epoch), where the store says: a shared
    # store's live entries carry it, so that a log replaced under a running server is seen.
    epoch: str = ""
    # The bytes in its data (``shotx.client.binary``): ``data_json`` holds their
    # placeholders, the store keeps them as binary beside it.
    attachments: tuple[bytes, ...] = ()

    @property
    def data(self) -> Any:
        return binary.decode(self.data_json, self.attachments)


@dataclass(frozen=True)
class BinaryReply:
    """A remembered reply that carries bytes: its JSON text with placeholders, and the attachments.

    A reply without bytes is remembered as its JSON text (a plain ``str``).
    """

    json: str
    attachments: tuple[bytes, ...]



@dataclass(frozen=True)
class RoomBounds:
    """Where a room's log stands.

    ``floor`` is the highest offset retention dropped (0 if none): the log
    holds ``(floor, head]``. ``delivered`` is the highest offset some member
    received live or through the backlog; what lies in ``(delivered, head]``
    is the Shotx backlog a join without ``since`` receives.

    ``epoch`` names the history the offsets count in. A store makes one
    (:func:`new_epoch`) when it first sees a room and keeps it as long as that
    log exists, so an offset only means something together with its epoch: a
    client holding offset 50 of epoch A that meets epoch B (an empty new
    SQLite file, a flushed Redis, a restarted memory store) is looking at
    another history that starts at offset 1, not at the same one cut short.
    The default ``""`` is "unknown" and belongs to hand-made bounds only.
    """

    head: int = 0
    floor: int = 0
    delivered: int = 0
    epoch: str = ""


def new_epoch() -> str:
    """A fresh history identity: 16 random hex characters.

    >>> len(new_epoch()), new_epoch() != new_epoch()
    (16, True)
    """
    return secrets.token_hex(8)


class Store(Protocol):
    """Durable room logs plus the reply memory behind idempotent resends.

    A store may say ``settles_on_the_loop = True`` when every call of it
    settles within the event loop's own turns, with no I/O to wait for
    (SQLite, memory): the server then puts no ``store_timeout`` timer around
    its reply lookups and writes, which cost about 4 % of an ack. Without it
    (Redis, or any store of an application's), every such call is timed. A
    subclass of ``SqliteStore`` or ``MemoryStore`` whose calls wait for I/O
    must set it back to False: it inherits True.
    """

    async def open(self) -> None:
        """Create or load the storage; called once before first use."""

    async def close(self) -> None:
        """Flush pending writes and release the storage."""

    async def append(self, room: str, type_: str, data_json: str, message_id: str, ts: float,
                     delivered: bool, max_messages: int, attachments: tuple[bytes, ...] = ()) -> LogEntry:
        """Add a message (its data as JSON text, and the bytes its placeholders name) at ``head + 1``.

        The entry returned, and every read of it, carries the same attachments, byte for byte.

        Reads see it when this returns; it is durable once :meth:`flushed`
        returns. The two are apart so that a server can release a room's lock
        before the commit, and sends to one room can share one.
        ``delivered`` marks it as received (the room had members), which moves
        the room's ``delivered`` mark; ``max_messages`` drops the oldest
        entries beyond that count in the same write.
        """

    async def flushed(self, entry: LogEntry | None = None) -> None:
        """Return once ``entry`` (what :meth:`append` returned) is durable, or raise
        why it never will be (a write that failed is never reported durable).

        Without an entry: once every write made before the call is durable,
        raising if an append among them failed; a store writing in groups
        (``sqlite_store.py``) cannot tell whose, so a caller that knows its
        entry passes it, and only the failed append's own writer hears of it.
        """

    async def read(self, room: str, after: int, limit: int) -> list[LogEntry]:
        """Entries with ``offset > after`` in offset order, at most ``limit``."""

    async def bounds(self, room: str) -> RoomBounds:
        """The room's head, retention floor, delivered mark and epoch.

        Any room has an epoch, even one never written: the first call makes
        it, and the room's first append keeps that same one. It stays the same
        across calls, appends, retention and (for a durable store) reopening
        the same storage; storage that lost the log answers with a new one.
        """

    async def mark_delivered(self, room: str, offset: int) -> None:
        """Move the delivered mark forward to ``offset`` (never backward)."""

    async def drop_older_than(self, ts: float) -> int:
        """Retention by age across rooms; returns how many entries went.

        Each room loses its oldest entries while they are older than ``ts``.
        A store with many rows does it in batches that let the event loop
        (and, on Redis, the server's other commands) run between them.
        """

    async def remember(self, principal: str, message_id: str, reply_json: str | BinaryReply, ts: float) -> None:
        """Keep the reply (JSON text, or a :class:`BinaryReply`) a handler produced for ``(principal, message_id)``.

        Returns once this reply is durable, or raises why it is not: its own
        write's failure only, never another write's that shared its commit (a
        store writing in groups lets the replies of one loop turn share one
        write). The server awaits it before the ack leaves. While it is out,
        ``recall`` already finds the reply.
        """

    async def recall(self, principal: str, message_id: str) -> str | BinaryReply | None:
        """The remembered reply, as it was given (text, or a :class:`BinaryReply`), or ``None``."""

    async def forget_replies_before(self, ts: float) -> int:
        """Drop replies older than ``ts``; returns how many went (in batches, as above)."""


@runtime_checkable
class SharedStore(Store, Protocol):
    """A store several server processes share (``RedisStore``).

    Besides the log, it publishes every append, each room's in offset
    order; the servers deliver live messages from there
    (``shared_delivery.py``) instead of broadcasting their own sends.
    """

    def live_entries(self) -> AsyncIterator[LogEntry]:
        """Every entry appended by any process, from the moment ``open`` returned."""

    async def subscribe(self) -> None:
        """Subscribe to the appends anew (after ``live_entries`` failed); returns once the
        subscription is in place, so that every append from then on is in ``live_entries``."""
