"""Pure client state: the outbox, joined rooms with offsets, dedup, backoff.

Theory of operation
-------------------
Every transport (python-socketio in CPython, the JavaScript socket.io-client
under Pyodide) and every store (memory, SQLite, IndexedDB) sits around these
classes; none of them decides anything. The decisions are:

* **Outbox.** A send becomes an :class:`OutboxRecord` with a UUIDv7 id before
  anything touches the network. It is written to the store first, then
  emitted; it leaves the outbox only when its ack arrives. After a reconnect
  every record still present is emitted again, in send order. The server
  remembers ``(principal, id) -> reply``, so a record whose ack was lost runs
  its handler once and the resend just fetches the reply.
* **Rooms.** :class:`RoomBook` keeps each joined room with the offset of the
  last message whose handler *finished*, and the epoch (history) that offset
  counts in. A rejoin sends both as ``since`` and ``epoch`` and the server
  replays what came after (or, for another history, everything). A room
  joined for the first time sends no ``since`` and gets the Shotx backlog;
  its position starts at the join answer, which the server sends before the
  replay. An answer that says messages are gone becomes a :class:`Gap`.
* **Dedup.** Replay and live broadcast can overlap around a join, so a room
  message is handled only if its offset is past the room's offset and its id
  was not seen recently (:class:`SeenIds`).
* **Backoff.** Reconnection waits grow exponentially with jitter
  (:class:`Backoff`), reset by a successful connect.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from . import binary, protocol


@dataclass
class OutboxRecord:
    """One queued message, as persisted (one store record per message)."""

    id: str
    event: str
    meta: dict[str, Any]
    data: Any
    seq: int = 0

    @property
    def type(self) -> str:
        return str(self.meta.get("type", self.event))

    def payload(self) -> dict[str, Any]:
        return {"meta": self.meta, "data": self.data}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "meta": self.meta, "data": self.data, "seq": self.seq}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> OutboxRecord:
        return cls(raw["id"], raw["event"], dict(raw["meta"]), raw.get("data"), int(raw.get("seq", 0)))


class Outbox:
    """Records waiting for their ack, in send order.

    >>> box = Outbox()
    >>> r = box.add("message", {"type": "t"}, {"n": 1})
    >>> [x.id for x in box.pending()] == [r.id]
    True
    >>> box.bytes == len('{"meta":{"type":"t","id":"%s"},"data":{"n":1}}' % r.id)
    True
    >>> box.acknowledge(r.id) is r, len(box), box.bytes
    (True, 0, 0)
    """

    def __init__(self, records: Iterable[OutboxRecord] = ()) -> None:
        self._records: OrderedDict[str, OutboxRecord] = OrderedDict()
        # Encoded size per record, and their sum: what ``max_queued_bytes`` bounds.
        self._sizes: dict[str, int] = {}
        self.bytes = 0
        self._next_seq = 1
        for record in sorted(records, key=lambda r: (r.seq, r.id)):
            self._records[record.id] = record
            self._count(record)
            self._next_seq = max(self._next_seq, record.seq + 1)

    def _count(self, record: OutboxRecord, size: int | None = None) -> None:
        """Add a record's encoded size (computed when not given) to :attr:`bytes`."""
        if record.id not in self._sizes:
            self._sizes[record.id] = binary.encoded_size(record.payload()) if size is None else size
            self.bytes += self._sizes[record.id]

    def add(self, event: str, meta: dict[str, Any], data: Any, message_id: str | None = None,
            size: int | None = None) -> OutboxRecord:
        """A new record at the end; ``size`` is its encoded size if the caller has it."""
        record_id = message_id or protocol.uuid7()
        record = OutboxRecord(record_id, event, {**meta, "id": record_id}, data, self._next_seq)
        self._next_seq += 1
        self._records[record_id] = record
        self._count(record, size)
        return record

    def adopt(self, record: OutboxRecord) -> bool:
        """Take a record another tab or process queued; False if already known."""
        if record.id in self._records:
            return False
        self._records[record.id] = record
        self._count(record)
        self._records = OrderedDict(sorted(self._records.items(), key=lambda item: (item[1].seq, item[0])))
        self._next_seq = max(self._next_seq, record.seq + 1)
        return True

    def sync(self, stored: Iterable[OutboxRecord], keep: set[str]) -> None:
        """Take the stored outbox as the truth, plus our own records in ``keep``.

        Another tab may have flushed (and deleted) records we loaded, or
        queued records we never saw; only records this client made itself
        may be missing from storage, because their write is still on its way.
        """
        merged = {record.id: record for record in stored}
        for record_id, record in self._records.items():
            if record_id in keep:
                merged.setdefault(record_id, record)
        self._records = OrderedDict(sorted(merged.items(), key=lambda item: (item[1].seq, item[0])))
        self._next_seq = max([self._next_seq, *(r.seq + 1 for r in merged.values())])
        for gone in [record_id for record_id in self._sizes if record_id not in merged]:
            self.bytes -= self._sizes.pop(gone)
        for record in merged.values():
            self._count(record)

    def acknowledge(self, record_id: str) -> OutboxRecord | None:
        record = self._records.pop(record_id, None)
        if record is not None:
            self.bytes -= self._sizes.pop(record_id, 0)
        return record

    def pending(self) -> list[OutboxRecord]:
        return list(self._records.values())

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._records

    def __len__(self) -> int:
        return len(self._records)


class SeenIds:
    """The ids of recently handled room messages, bounded so it stays cheap.

    >>> seen = SeenIds(limit=2)
    >>> seen.add("a"); seen.add("b"); seen.add("c")
    >>> "a" in seen, "c" in seen
    (False, True)
    """

    def __init__(self, ids: Iterable[str] = (), limit: int = 1000) -> None:
        self.limit = limit
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        for message_id in ids:
            self.add(message_id)

    def add(self, message_id: str) -> None:
        if message_id in self._set:
            return
        self._order.append(message_id)
        self._set.add(message_id)
        while len(self._order) > self.limit:
            self._set.discard(self._order.popleft())

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._set

    def recent(self) -> list[str]:
        return list(self._order)


@dataclass(frozen=True)
class Gap:
    """Room messages this client will not receive: its application may want to
    reload its view or fetch what it missed from its own database.

    ``reason`` is :data:`GAP_EXPIRED` (retention dropped ``missed`` messages
    before we rejoined), :data:`GAP_RESET` (the server's log ends before our
    offset: it lost messages we had) or :data:`GAP_NEW_HISTORY` (the room's
    log is another history than the one our offset counted, e.g. a server
    restarted on an empty store: its messages are replayed from its start).
    ``since`` is the offset we joined with, ``head`` the server's.
    """

    room: str
    reason: str
    missed: int
    since: int | None
    head: int


GAP_EXPIRED: Final = "expired"
GAP_RESET: Final = "reset"
GAP_NEW_HISTORY: Final = "new_history"


@dataclass
class RoomBook:
    """Joined rooms with the offset of the last message handled in each.

    A room's position is its offset plus the ``epoch`` (history) it counts
    in. It starts at the first join answer (before the replay that follows
    the answer), so a member that joins and drops before its first message
    still rejoins from there instead of from the room's delivered mark.

    >>> book = RoomBook()
    >>> book.join("r")
    >>> book.join_request("r")
    {'room': 'r'}
    >>> book.adopt_answer("r", {"head": 0, "after": 0, "epoch": "e1", "missed": 0})
    (True, None)
    >>> book.accept({"room": "r", "offset": 1, "id": "m1"})
    True
    >>> book.handled("r", 1, "m1")
    True
    >>> book.accept({"room": "r", "offset": 1, "id": "m1"})
    False
    >>> book.join_request("r")
    {'room': 'r', 'since': 1, 'epoch': 'e1'}
    """

    offsets: dict[str, int | None] = field(default_factory=dict)
    seen: SeenIds = field(default_factory=SeenIds)
    epochs: dict[str, str] = field(default_factory=dict)

    def join(self, room: str) -> None:
        self.offsets.setdefault(protocol.check_room(room), None)

    def leave(self, room: str) -> None:
        self.offsets.pop(room, None)
        self.epochs.pop(room, None)

    def join_request(self, room: str) -> dict[str, Any]:
        """The ``sx_join`` data for ``room``: with ``since`` (and its epoch) once we have a position."""
        since = self.offsets.get(room)
        if since is None:
            return {"room": room}
        epoch = self.epochs.get(room)
        return {"room": room, "since": since} if epoch is None else {"room": room, "since": since, "epoch": epoch}

    def rejoin_requests(self) -> list[dict[str, Any]]:
        return [self.join_request(room) for room in self.offsets]

    def accept(self, meta: dict[str, Any]) -> bool:
        """Should a message with this meta go to a handler? False for duplicates."""
        message_id = meta.get("id")
        if isinstance(message_id, str) and message_id in self.seen:
            return False
        if "room" not in meta and "offset" not in meta:
            return True
        room, offset = meta.get("room"), meta.get("offset")
        if not isinstance(room, str) or type(offset) is not int or offset < 0:
            return False  # a malformed room message: handling it would store its offset
        last = self.offsets.get(room)
        return room not in self.offsets or last is None or offset > last

    def handled(self, room: str | None, offset: int | None, message_id: str | None) -> bool:
        """Record a finished handler; True when the room's offset moved (persist it)."""
        if message_id:
            self.seen.add(message_id)
        if room is None or offset is None or room not in self.offsets:
            return False
        last = self.offsets[room]
        if last is not None and offset <= last:
            return False
        self.offsets[room] = offset
        return True

    def adopt_answer(self, room: str, answer: Any) -> tuple[bool, Gap | None]:
        """Take a join answer, before the replay that follows it (the inbox keeps wire order).

        Returns whether the position changed (persist it) and the gap to
        report, if any. The position becomes the answer's ``after`` (where
        the replay starts) when we had none, when our offset did not apply
        (another history, or a log that ends before it), or when retention
        took what lay between our offset and ``after``; it never moves back
        otherwise.

        >>> book = RoomBook({"r": 50}, epochs={"r": "old"})
        >>> changed, gap = book.adopt_answer("r", {"head": 60, "after": 0, "epoch": "new",
        ...                                       "missed": 0, "since": 50, "reset": "new_history"})
        >>> changed, gap.reason, book.offsets["r"], book.epochs["r"]
        (True, 'new_history', 0, 'new')
        """
        if room not in self.offsets or not isinstance(answer, dict):
            return False, None
        head, after, epoch, missed = answer.get("head"), answer.get("after"), answer.get("epoch"), answer.get("missed")
        if not _is_offset(head) or not _is_offset(after):
            return False, None  # not an answer of ours (a server that does not say): keep our position
        last, reset = self.offsets[room], answer.get("reset")
        changed = False
        if last is None or reset is not None or after > last:
            changed = self.offsets[room] != after
            self.offsets[room] = after
        if isinstance(epoch, str) and epoch and self.epochs.get(room) != epoch:
            self.epochs[room] = epoch
            changed = True
        count = missed if _is_offset(missed) else 0
        if reset == protocol.RESET_NEW_HISTORY:
            return changed, Gap(room, GAP_NEW_HISTORY, count, last, head)
        if reset == protocol.RESET_LOG_BEHIND:
            return changed, Gap(room, GAP_RESET, count, last, head)
        return changed, Gap(room, GAP_EXPIRED, count, last, head) if count else None


def _is_offset(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class Backoff:
    """Exponential reconnection delays with jitter, in seconds.

    ``randomization`` is the socket.io factor: each delay is spread by up to
    +/- that fraction so that a crowd of clients does not return in step.

    >>> b = Backoff(initial=1.0, maximum=8.0, randomization=0.0)
    >>> [b.next_delay() for _ in range(5)]
    [1.0, 2.0, 4.0, 8.0, 8.0]
    >>> b.reset(); b.next_delay()
    1.0
    """

    initial: float = 1.0
    maximum: float = 30.0
    randomization: float = 0.5
    attempts: int = 0
    rand: Callable[[], float] = random.random

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        if self.randomization:
            spread = base * self.randomization
            base = base - spread + 2 * spread * self.rand()
        return float(max(0.0, min(base, self.maximum)))

    def reset(self) -> None:
        self.attempts = 0
