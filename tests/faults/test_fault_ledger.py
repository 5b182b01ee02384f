"""The fault suite's counting, with no loop: it must see what it claims to count."""

from __future__ import annotations

import random

from fault_ledger import SendLedger, tally_member, tally_sends
from fault_rooms import room_schedule
from fault_sends import send_schedule


def run(key, inc, t, number, resend=False):
    return {"id": f"id-{key}", "c": key[0], "n": key[1], "inc": inc, "t": t, "run": number, "resend": resend}


def test_a_send_run_twice_counts_as_the_crash_window_only_around_a_kill_and_unacknowledged():
    ledger = SendLedger(sent={(0, 1): "fault_send", (0, 2): "fault_send", (0, 3): "fault_send"})
    ledger.acked = {(0, 1): {"inc": 2, "run": 1}, (0, 2): {"inc": 1, "run": 2}, (0, 3): {"inc": 1, "run": 4}}
    runs = [run((0, 1), 1, 10.0, 1), run((0, 2), 1, 10.0, 2), run((0, 3), 1, 11.0, 3), run((0, 3), 1, 11.1, 4),
            run((0, 1), 2, 12.0, 1), run((0, 2), 2, 12.0, 2)]
    tally = tally_sends(ledger, runs, kills=[(1, 10.1)], window=0.25)
    # (0, 1): first run 100 ms before its process died, ack from the second run: the window
    # (0, 2): the client got the first run's ack, and it ran again: twice
    # (0, 3): twice in one process, no kill: twice
    assert tally.twice_in_window == [(0, 1)] and sorted(tally.twice) == [(0, 2), (0, 3)]
    assert round(tally.window_max_ms) == 100 and not tally.lost


def test_a_refusal_run_twice_is_judged_as_a_send_is():
    """A refusal's error is its outcome, remembered like a reply: a kill before it was durable
    runs it again (the crash window), but not when the sender had been told of that first run."""
    def refusal(key, inc, t, number):
        return {"refused": f"id-{key}", "c": key[0], "n": key[1], "inc": inc, "t": t, "run": number}
    ledger = SendLedger(sent={(0, 1): "fault_refuse", (0, 2): "fault_refuse", (0, 3): "fault_refuse"})
    ledger.failed = {(0, 1): "MessageError: refused on purpose: nothing was done (inc=2 run=1)",
                     (0, 2): "MessageError: refused on purpose: nothing was done (inc=1 run=2)",
                     (0, 3): "MessageError: refused on purpose: nothing was done (inc=1 run=4)"}
    runs = [refusal((0, 1), 1, 10.0, 1), refusal((0, 2), 1, 10.0, 2), refusal((0, 3), 1, 11.0, 3),
            refusal((0, 3), 1, 11.1, 4), refusal((0, 1), 2, 12.0, 1), refusal((0, 2), 2, 12.0, 2)]
    tally = tally_sends(ledger, runs, kills=[(1, 10.1)], window=0.25)
    assert tally.twice_in_window == [(0, 1)] and sorted(tally.twice) == [(0, 2), (0, 3)]
    assert not tally.lost and not tally.failed_but_ran

def test_lost_failed_but_ran_and_out_of_order_sends_are_counted():
    ledger = SendLedger(sent={(0, 1): "fault_send", (0, 2): "fault_send", (0, 3): "fault_send", (0, 4): "fault_refuse"})
    ledger.acked = {(0, 1): {}, (0, 3): {}}
    ledger.failed = {(0, 2): "MessageError: boom", (0, 4): "MessageError: refused"}
    runs = [run((0, 2), 1, 1.0, 1), run((0, 1), 1, 1.1, 2, resend=True),
            {"refused": "id-4", "c": 0, "n": 4, "inc": 1, "t": 1.2}]
    tally = tally_sends(ledger, runs, kills=[], window=0.25)
    assert tally.lost == [(0, 3)]  # acknowledged, yet no run on the server
    assert tally.failed_but_ran == [(0, 2)]
    assert tally.out_of_order == 1 and tally.out_of_order_resends == 1


def test_a_member_tally_counts_missing_repeats_and_late_messages():
    log = {offset: f"m{offset}" for offset in range(1, 9)}
    handled = [(2, "m2"), (3, "m3"), (3, "m3"), (6, "m6"), (5, "m5"), (7, "x"), (8, "m8"), (8, "m8")]
    tally = tally_member(handled, log, after=1, head=8, restarts={7})
    assert (tally.expected, tally.lost, tally.missing) == (7, 1, [(4, 4)])
    assert (tally.twice, tally.twice_in_window, tally.out_of_order, tally.wrong_id) == (1, 1, 1, 1)


def test_a_seed_draws_the_same_schedules():
    def draw(seed):
        rng = random.Random(seed)
        return send_schedule(rng, 2000, 20, 2, 3, 8), room_schedule(rng, 2000, 20, 1)

    assert draw(7) == draw(7) and draw(7) != draw(8)
    sends, rooms = draw(7)
    assert sum(event[1] == "cut" for event in sends) == 20 and sum(event[1] == "kill" for event in sends) == 2
    assert sum(event[1] == "joindrop" for event in rooms) == 2 and sum(event[1] == "kill" for event in rooms) == 1
