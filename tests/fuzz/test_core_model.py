"""The core's Outbox and RoomBook against simple models, as hypothesis state machines.

Pure: no loop, no I/O. The models say what the theory of operation in
``core.py`` promises, in the plainest terms: the outbox is the records not yet
acknowledged, in (seq, id) order, where a new send always sorts last; a
room's offset is the highest offset handled since the room was joined, and
moves back only through an explicit reset. Reloading either from what a
store would hold (records, offsets, seen ids) changes nothing.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from shotx.client.core import Outbox, OutboxRecord, RoomBook, SeenIds

from fuzz_frames import json_values
from fuzz_server import INPUTS, SCALE, examples

pytestmark = pytest.mark.timeout(int(120 * max(1.0, SCALE)))  # a longer hunt (SHOTX_FUZZ_SCALE) gets longer

ROOMS = st.sampled_from(["a", "b", "c"])
OFFSETS = st.integers(0, 30)


class OutboxMachine(RuleBasedStateMachine):
    records = Bundle("records")

    def __init__(self) -> None:
        super().__init__()
        self.box = Outbox()
        self.model: dict[str, OutboxRecord] = {}
        self.foreign = 0

    def step(self) -> None:
        INPUTS["core: outbox steps"] += 1

    @rule(target=records, data=json_values)
    def add(self, data: Any) -> OutboxRecord:
        self.step()
        record = self.box.add("message", {"type": "t"}, data)
        # After the present records, not after every seq ever used: a reload
        # from an empty store numbers from 1 again (only ordering across tabs
        # could notice; see the report).
        assert record.id not in self.model and all(record.seq > r.seq for r in self.model.values()), \
            "a new send must sort last"
        assert record.meta == {"type": "t", "id": record.id} and record.data == data
        self.model[record.id] = record
        return record

    @rule(target=records, seq=st.integers(0, 40))
    def another_tab_queued(self, seq: int) -> OutboxRecord:
        self.foreign += 1
        return OutboxRecord(f"tab-{self.foreign}", "message", {"type": "t", "id": f"tab-{self.foreign}"}, None, seq)

    @rule(record=records)
    def acknowledge(self, record: OutboxRecord) -> None:
        self.step()
        got = self.box.acknowledge(record.id)
        expected = self.model.pop(record.id, None)
        assert got is expected, "an ack takes exactly the record it names, once"

    @rule(record=records)
    def adopt(self, record: OutboxRecord) -> None:
        self.step()
        assert self.box.adopt(record) is (record.id not in self.model)
        self.model.setdefault(record.id, record)

    @rule(stored=st.lists(records, unique_by=lambda r: r.id), keep=st.lists(records), flush=st.randoms())
    def sync(self, stored: list[OutboxRecord], keep: list[OutboxRecord], flush: random.Random) -> None:
        """Another tab flushed some records and queued others: the store is the truth, plus our own in flight."""
        self.step()
        flush.shuffle(stored)
        keep_ids = {record.id for record in keep}
        merged = {record.id: record for record in stored}
        for record_id, record in self.model.items():
            if record_id in keep_ids:
                merged.setdefault(record_id, record)
        self.box.sync(stored, keep_ids)
        self.model = merged

    @rule(order=st.randoms())
    def reload(self, order: random.Random) -> None:
        """A page reload: the outbox rebuilt from stored records, in whatever order the store lists them."""
        self.step()
        saved = [OutboxRecord.from_dict(record.to_dict()) for record in self.box.pending()]
        order.shuffle(saved)
        self.box = Outbox(saved)
        self.model = {record.id: record for record in saved}

    @invariant()
    def send_order_kept_nothing_lost_or_twice(self) -> None:
        pending = [record.id for record in self.box.pending()]
        expected = sorted(self.model, key=lambda record_id: (self.model[record_id].seq, record_id))
        assert pending == expected
        assert len(self.box) == len(self.model) and all(record_id in self.box for record_id in self.model)


class RoomBookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = RoomBook()
        self.offsets: dict[str, int | None] = {}
        self.epochs: dict[str, str] = {}
        self.handled_ids: set[str] = set()
        self.ids = 0

    def step(self) -> None:
        INPUTS["core: room book steps"] += 1

    @rule(room=ROOMS)
    def join(self, room: str) -> None:
        self.step()
        self.book.join(room)
        self.offsets.setdefault(room, None)

    @rule(room=ROOMS)
    def leave(self, room: str) -> None:
        self.step()
        self.book.leave(room)
        self.offsets.pop(room, None)
        self.epochs.pop(room, None)

    @rule(room=ROOMS | st.none(), offset=OFFSETS, again=st.booleans())
    def message(self, room: str | None, offset: int, again: bool) -> None:
        """A live or replayed message arrives; if accepted, its handler finishes."""
        self.step()
        if again and self.handled_ids:
            message_id = sorted(self.handled_ids)[offset % len(self.handled_ids)]
        else:
            self.ids += 1
            message_id = f"m{self.ids}"
        meta: dict[str, Any] = {"type": "t", "id": message_id}
        if room is not None:
            meta.update(room=room, offset=offset)
        last = self.offsets.get(room) if room is not None else None
        fresh = room is None or room not in self.offsets or last is None or offset > last
        expected = message_id not in self.handled_ids and fresh
        assert self.book.accept(meta) is expected, "duplicates (by id or offset) are refused, the rest taken"
        if not expected:
            return
        moved = self.book.handled(room, offset if room is not None else None, message_id)
        assert moved is (room is not None and room in self.offsets and (last is None or offset > last))
        if moved:
            self.offsets[room] = offset  # type: ignore[index]
        self.handled_ids.add(message_id)

    @rule(room=ROOMS, after=OFFSETS, beyond=OFFSETS, missed=OFFSETS,
          reset=st.sampled_from([None, "new_history", "log_behind"]), epoch=st.sampled_from(["e1", "e2"]))
    def join_answer(self, room: str, after: int, beyond: int, missed: int, reset: str | None, epoch: str) -> None:
        """A join answer: the position becomes ``after`` when we had none, when our offset
        did not apply (reset) or when retention took what lay before ``after``; never back otherwise."""
        self.step()
        answer = {"head": after + beyond, "after": after, "epoch": epoch, "missed": missed}
        if reset is not None:
            answer["reset"] = reset
        changed, gap = self.book.adopt_answer(room, answer)
        if room not in self.offsets:
            assert (changed, gap) == (False, None)
            return
        last = self.offsets[room]
        moves = last is None or reset is not None or after > last
        new_epoch = self.epochs.get(room) != epoch
        assert changed is ((moves and last != after) or new_epoch)
        if moves:
            self.offsets[room] = after
        self.epochs[room] = epoch
        reason = {"new_history": "new_history", "log_behind": "reset"}.get(reset or "") or ("expired" if missed else None)
        assert (gap.reason if gap is not None else None) == reason
        if gap is not None:
            assert (gap.room, gap.since, gap.head, gap.missed) == (room, last, after + beyond, missed)

    @rule()
    def reload(self) -> None:
        """Rebuilt from what the store keeps: offsets and recently handled ids."""
        self.step()
        self.book = RoomBook(dict(self.book.offsets), SeenIds(self.book.seen.recent()), dict(self.book.epochs))

    @invariant()
    def offsets_and_rejoins_match_the_model(self) -> None:
        assert self.book.offsets == self.offsets
        for room, offset in self.offsets.items():
            expected: dict[str, Any] = {"room": room} if offset is None else {"room": room, "since": offset}
            if offset is not None and room in self.epochs:
                expected["epoch"] = self.epochs[room]
            assert self.book.join_request(room) == expected
        assert self.book.epochs == self.epochs
        assert all(message_id in self.book.seen for message_id in self.handled_ids)


TestOutbox = OutboxMachine.TestCase
TestOutbox.settings = settings(max_examples=examples(150), stateful_step_count=40, deadline=None)
TestRoomBook = RoomBookMachine.TestCase
TestRoomBook.settings = settings(max_examples=examples(150), stateful_step_count=40, deadline=None)
