"""The outbox's bounds and the 2007 pause, decided with no loop and no I/O."""

import pytest

from shotx.client import binary, protocol
from shotx.client.core import Outbox, OutboxRecord
from shotx.client.errors import OutboxFull, SxError
from shotx.client.outbox_limits import (DEFAULT_MAX_QUEUED, DEFAULT_MAX_QUEUED_BYTES, OutboxBounds, Throttle,
                                        is_limit_refusal)


def size_of(record):
    return binary.encoded_size(record.payload())


def test_the_outbox_counts_the_encoded_bytes_of_what_it_holds():
    box = Outbox()
    a = box.add("message", {"type": "t"}, {"text": "é" * 10})
    b = box.add("message", {"type": "t"}, [1, 2, 3], size=999)  # the sender passes the size it computed
    assert box.bytes == size_of(a) + 999
    box.acknowledge(a.id)
    box.acknowledge(a.id)  # a late second ack takes nothing off
    assert box.bytes == 999
    box.acknowledge(b.id)
    assert box.bytes == 0 and len(box) == 0


def test_restored_adopted_and_synced_records_count_too():
    made = Outbox()
    records = [made.add("message", {"type": "t"}, {"n": n}) for n in range(3)]
    restored = Outbox(records)
    assert restored.bytes == sum(size_of(r) for r in records)
    other_tab = OutboxRecord("x", "message", {"type": "t", "id": "x"}, "from another tab", seq=9)
    assert restored.adopt(other_tab) and restored.bytes == sum(size_of(r) for r in [*records, other_tab])
    # another tab flushed records[0] and other_tab; records[2] is ours, its write still on its way
    restored.sync([records[1]], keep={records[2].id})
    assert restored.bytes == size_of(records[1]) + size_of(records[2]) and len(restored) == 2


def test_bounds_refuse_the_message_that_would_go_past_either_one():
    bounds = OutboxBounds(max_queued=3, max_queued_bytes=1000)
    assert bounds.refusal(queued=2, queued_bytes=900, size=100) is None  # exactly at both bounds: fits
    full = bounds.refusal(queued=3, queued_bytes=0, size=1)
    assert isinstance(full, OutboxFull) and isinstance(full, SxError)
    assert (full.code, full.reason, full.message) == ("OUTBOX_FULL", "count",
                                                      "OUTBOX_FULL: 3 messages queued (max_queued=3)")
    too_big = bounds.refusal(queued=0, queued_bytes=900, size=101)
    assert (too_big.reason, too_big.message) == (
        "bytes", "OUTBOX_FULL: 900 bytes queued + 101 bytes > max_queued_bytes=1000")


def test_bounds_default_to_ten_thousand_messages_and_50_mib_and_none_is_unbounded():
    assert (OutboxBounds().max_queued, OutboxBounds().max_queued_bytes) == (10_000, 50 * 1024 * 1024)
    assert (DEFAULT_MAX_QUEUED, DEFAULT_MAX_QUEUED_BYTES) == (10_000, 50 * 1024 * 1024)
    assert OutboxBounds(None, None).refusal(10**9, 10**12, 10**6) is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True])
def test_a_bound_that_is_not_a_positive_int_is_refused_at_construction(bad):
    with pytest.raises(ValueError, match="must be a positive int or None"):
        OutboxBounds(max_queued=bad)
    with pytest.raises(ValueError, match="max_queued_bytes"):
        OutboxBounds(max_queued_bytes=bad)


def test_only_a_2007_failure_is_a_limit_refusal():
    assert is_limit_refusal(protocol.failure(protocol.LIMIT_EXCEEDED, "Limit exceeded: x"))
    for other in (protocol.failure(protocol.HANDLER_ERROR, "boom"), {"meta": {"success": True}, "data": 2007},
                  {"meta": {"success": False, "code": "2007"}}, {"meta": {"success": False, "code": 2007.0}},
                  None, "2007", {"meta": None}):
        assert not is_limit_refusal(other)


def test_the_first_refusal_pauses_and_later_ones_join_the_same_pause():
    throttle = Throttle(rand=lambda: 0.5)
    assert not throttle.paused
    assert throttle.refuse("a") == 0.1 and throttle.paused
    assert throttle.refuse("b") is None and throttle.refuse("c") is None
    throttle.admitted()  # an ack of a message that went out before the refusal: says nothing
    assert throttle.resume() == {"a", "b", "c"} and not throttle.paused and throttle.refused == set()


def test_the_wait_grows_while_nothing_gets_through_and_starts_again_once_something_does():
    throttle = Throttle(initial=0.1, maximum=0.5, rand=lambda: 0.5)
    delays = []
    for _ in range(5):
        delays.append(throttle.refuse("a"))
        throttle.resume()
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
    throttle.admitted()
    assert throttle.refuse("b") == 0.1


def test_the_wait_has_jitter_within_the_randomization():
    low, high = Throttle(rand=lambda: 0.0), Throttle(rand=lambda: 1.0)
    assert low.refuse("a") == pytest.approx(0.05) and high.refuse("a") == pytest.approx(0.15)


def test_a_new_connection_starts_without_a_pause_and_with_the_shortest_wait():
    throttle = Throttle(rand=lambda: 0.5)
    throttle.refuse("a"), throttle.resume(), throttle.refuse("a")
    throttle.reset()
    assert not throttle.paused and throttle.refused == set()
    assert throttle.refuse("b") == 0.1
