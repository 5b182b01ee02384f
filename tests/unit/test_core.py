"""Pure client state, driven with no event loop and no I/O. Plain functions
and asserts only: the same file also runs inside Pyodide."""

from shotx.client import protocol
from shotx.client.core import (GAP_EXPIRED, GAP_NEW_HISTORY, GAP_RESET, Backoff, Gap, Outbox, OutboxRecord,
                               RoomBook, SeenIds)


def test_outbox_keeps_send_order_and_ids():
    box = Outbox()
    records = [box.add("message", {"type": "t"}, {"n": n}) for n in range(5)]
    assert [r.data["n"] for r in box.pending()] == [0, 1, 2, 3, 4]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert all(r.meta["id"] == r.id and r.meta["type"] == "t" for r in records)
    assert len({r.id for r in records}) == 5


def test_outbox_leaves_only_on_ack_and_ignores_unknown_acks():
    box = Outbox()
    a, b = box.add("message", {"type": "t"}, 1), box.add("message", {"type": "t"}, 2)
    assert box.acknowledge(b.id) is b
    assert box.acknowledge(b.id) is None
    assert box.acknowledge("never-sent") is None
    assert [r.id for r in box.pending()] == [a.id] and a.id in box and b.id not in box


def test_outbox_reloads_in_seq_order_and_continues_numbering():
    first = Outbox()
    for n in range(3):
        first.add("message", {"type": "t"}, n)
    saved = [OutboxRecord.from_dict(r.to_dict()) for r in reversed(first.pending())]
    again = Outbox(saved)
    assert [r.data for r in again.pending()] == [0, 1, 2]
    assert again.add("message", {"type": "t"}, 3).seq == 4


def test_outbox_adopts_records_from_another_tab_in_order():
    box = Outbox()
    mine = box.add("message", {"type": "t"}, "mine")
    other = OutboxRecord("other-id", "message", {"type": "t", "id": "other-id"}, "other", seq=0)
    assert box.adopt(other) is True and box.adopt(other) is False
    assert [r.data for r in box.pending()] == ["other", "mine"] and mine.seq == 1


def test_record_payload_is_the_wire_envelope():
    record = Outbox().add("message", {"type": "t"}, {"x": 1})
    assert record.payload() == {"meta": {"type": "t", "id": record.id}, "data": {"x": 1}}
    assert record.type == "t"


def test_seen_ids_are_bounded_and_keep_the_newest():
    seen = SeenIds(limit=3)
    for mid in "abcde":
        seen.add(mid)
    seen.add("e")
    assert seen.recent() == ["c", "d", "e"] and "a" not in seen and "e" in seen


def test_room_book_first_join_has_no_since_then_resumes():
    book = RoomBook()
    book.join("r")
    assert book.join_request("r") == {"room": "r"}
    assert book.handled("r", 3, "m3") is True
    assert book.join_request("r") == {"room": "r", "since": 3}
    book.join("r")  # joining again keeps the offset
    assert book.rejoin_requests() == [{"room": "r", "since": 3}]


def test_room_book_dedups_by_offset_and_by_id():
    book = RoomBook()
    book.join("r")
    assert book.accept({"room": "r", "offset": 1, "id": "a"})
    book.handled("r", 1, "a")
    assert not book.accept({"room": "r", "offset": 1, "id": "a"})
    assert not book.accept({"room": "r", "offset": 1, "id": "other"})
    assert not book.accept({"type": "direct", "id": "a"})
    assert book.accept({"room": "r", "offset": 2, "id": "b"})
    assert book.handled("r", 1, "late") is False and book.offsets["r"] == 1


def test_room_book_leave_forgets_room_and_messages_from_unjoined_rooms_pass():
    book = RoomBook()
    book.join("r")
    book.handled("r", 5, "x")
    book.leave("r")
    assert book.rejoin_requests() == []
    assert book.accept({"room": "r", "offset": 1, "id": "y"})
    assert book.handled("r", 1, "y") is False


def test_room_book_refuses_bad_room_names():
    book = RoomBook()
    for bad in ("", None, 7):
        try:
            book.join(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"joined {bad!r}")
    assert book.offsets == {}


def test_backoff_grows_exponentially_caps_and_resets():
    backoff = Backoff(initial=0.5, maximum=4.0, randomization=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_stays_within_the_spread():
    low = Backoff(initial=1.0, maximum=30.0, randomization=0.5, rand=lambda: 0.0)
    high = Backoff(initial=1.0, maximum=30.0, randomization=0.5, rand=lambda: 1.0)
    assert [low.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert [high.next_delay() for _ in range(3)] == [1.5, 3.0, 6.0]
    capped = Backoff(initial=20.0, maximum=30.0, randomization=0.5, rand=lambda: 1.0)
    assert capped.next_delay() == 30.0


def test_outbox_sync_drops_what_another_tab_flushed_and_keeps_our_own():
    box = Outbox([OutboxRecord("old-a", "message", {"type": "t", "id": "old-a"}, "a", seq=1),
                  OutboxRecord("old-b", "message", {"type": "t", "id": "old-b"}, "b", seq=2)])
    mine = box.add("message", {"type": "t"}, "mine")
    theirs = OutboxRecord("theirs", "message", {"type": "t", "id": "theirs"}, "t", seq=9)
    box.sync([box.pending()[1], theirs], keep={mine.id})
    assert [r.data for r in box.pending()] == ["b", "mine", "t"]
    assert box.add("message", {"type": "t"}, "next").seq == 10


def answer(head, after, epoch="e1", missed=0, reset=None, since=None):
    data = {"room": "r", "since": since, "head": head, "after": after, "until": head, "epoch": epoch,
            "missed": missed, "replayed": head - after}
    return data if reset is None else {**data, "reset": reset}


def test_a_first_join_takes_its_position_from_the_answer_before_any_message():
    """Defect: a member that joined and dropped before its first message rejoined
    with no since, from the room's delivered mark, and missed what others got live."""
    book = RoomBook()
    book.join("r")
    assert book.adopt_answer("r", answer(head=7, after=7)) == (True, None)
    assert book.join_request("r") == {"room": "r", "since": 7, "epoch": "e1"}
    book.join("b")
    assert book.adopt_answer("b", answer(head=7, after=4)) == (True, None)  # backlog 5..7 follows
    assert book.accept({"room": "b", "offset": 5, "id": "m5"}) and not book.accept({"room": "b", "offset": 4})


def test_a_rejoin_keeps_its_position_and_never_moves_back():
    book = RoomBook({"r": 9}, epochs={"r": "e1"})
    assert book.adopt_answer("r", answer(head=12, after=9, since=9)) == (False, None)
    assert book.offsets["r"] == 9
    assert book.adopt_answer("gone", answer(head=3, after=3)) == (False, None) and "gone" not in book.offsets
    assert book.adopt_answer("r", {"room": "r"}) == (False, None)  # a server that says nothing


def test_expired_messages_move_the_position_to_the_floor_and_make_a_gap():
    book = RoomBook({"r": 1}, epochs={"r": "e1"})
    changed, gap = book.adopt_answer("r", answer(head=10, after=4, missed=3, since=1))
    assert changed and book.offsets["r"] == 4
    assert gap == Gap("r", GAP_EXPIRED, 3, 1, 10)


def test_another_history_replays_from_its_start_and_says_so():
    book = RoomBook({"r": 50}, epochs={"r": "old"})
    changed, gap = book.adopt_answer("r", answer(head=60, after=0, epoch="new", since=50,
                                                 reset=protocol.RESET_NEW_HISTORY))
    assert changed and book.offsets["r"] == 0 and book.epochs["r"] == "new"
    assert gap == Gap("r", GAP_NEW_HISTORY, 0, 50, 60)
    assert book.accept({"room": "r", "offset": 1, "id": "new-1"})  # the new history's first message


def test_a_log_that_ends_before_our_offset_sets_us_back_and_says_so():
    book = RoomBook({"r": 9}, epochs={"r": "e1"})
    changed, gap = book.adopt_answer("r", answer(head=2, after=2, since=9, reset=protocol.RESET_LOG_BEHIND))
    assert changed and book.offsets["r"] == 2 and gap.reason == GAP_RESET


def test_leaving_forgets_the_epoch_too():
    book = RoomBook({"r": 3}, epochs={"r": "e1"})
    book.leave("r")
    book.join("r")
    assert book.join_request("r") == {"room": "r"}
