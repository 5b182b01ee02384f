"""Counting what the fault runs did, from both sides, with no I/O.

Sends: the client side knows which sends were acknowledged (and by which
run: the fault server's reply names its incarnation and run number), which
were refused, and which a closed client left in its store for the next
client on that store (``orphaned``: acknowledged later, reply unseen). The
server side is the runs file, one line per handler run. A send that ran
twice is inside the documented crash window only if its first run's
incarnation was killed within ``window`` seconds after that run and the
ack the client got did not come from that first run (an acknowledged send
must never run again).

Room messages: each member's handled ``(offset, id)`` in handling order,
checked against the log (or against the acknowledged publishes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Key = tuple[int, int]  # (client, n)


def digest(schedule: Any) -> str:
    """A short fingerprint of a fault schedule, to show two runs drew the same one."""
    return hashlib.sha1(json.dumps(schedule, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class SendLedger:
    sent: dict[Key, str] = field(default_factory=dict)  # key -> message type
    acked: dict[Key, Any] = field(default_factory=dict)  # key -> reply data
    failed: dict[Key, str] = field(default_factory=dict)  # key -> error text the app got
    orphaned: set[Key] = field(default_factory=set)


@dataclass
class SendTally:
    lost: list[Key] = field(default_factory=list)
    twice: list[Key] = field(default_factory=list)
    twice_in_window: list[Key] = field(default_factory=list)
    failed_but_ran: list[Key] = field(default_factory=list)
    out_of_order: int = 0
    out_of_order_resends: int = 0  # of those, first runs of a copy flagged meta.resend
    window_max_ms: float = 0.0


def _in_window(first: dict[str, Any], second: dict[str, Any], acked: Any, kills: dict[int, float],
               window: float) -> float | None:
    """Seconds between the first run and its process's SIGKILL, when the pair is the crash window."""
    killed_at = kills.get(first["inc"])
    if killed_at is None or first["inc"] == second["inc"]:
        return None
    gap = killed_at - first["t"]
    if not 0 <= gap <= window:
        return None
    if isinstance(acked, dict) and (acked.get("inc"), acked.get("run")) == (first["inc"], first["run"]):
        return None  # the client was told it ran, and it ran again
    return gap


def _told_refusal(error: str | None) -> dict[str, int] | None:
    """The run a refusal's error named (fault_server.py puts ``inc=… run=…`` in it), as an ack would."""
    found = re.search(r"\(inc=(\d+) run=(\d+)\)", error or "")
    return None if found is None else {"inc": int(found[1]), "run": int(found[2])}


def tally_sends(ledger: SendLedger, runs: list[dict[str, Any]], kills: list[tuple[int, float]],
                window: float) -> SendTally:
    tally = SendTally()
    kill_times = dict(kills)
    ran: dict[Key, list[dict[str, Any]]] = defaultdict(list)  # runs of a send, or of a refusal
    first_order: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for line in runs:
        key = (line["c"], line["n"])
        ran[key].append(line)
        if len(ran[key]) == 1:
            first_order[key[0]].append((key[1], bool(line.get("resend"))))
    for key, type_ in ledger.sent.items():
        runs_of = ran.get(key, [])
        answered = key in ledger.acked or key in ledger.failed or key in ledger.orphaned
        if not answered or not runs_of:
            tally.lost.append(key)
        if type_ == "fault_send" and key in ledger.failed and runs_of:
            tally.failed_but_ran.append(key)
        if len(runs_of) < 2:
            continue
        gap = None
        if len(runs_of) == 2:  # a refusal's error is its outcome: the same crash window as a reply
            told = ledger.acked.get(key) if type_ == "fault_send" else _told_refusal(ledger.failed.get(key))
            gap = _in_window(runs_of[0], runs_of[1], told, kill_times, window)
        if gap is None:
            tally.twice.append(key)
        else:
            tally.twice_in_window.append(key)
            tally.window_max_ms = max(tally.window_max_ms, gap * 1000)
    for order in first_order.values():
        highest = -1
        for n, resent in order:
            if n < highest:
                tally.out_of_order += 1
                tally.out_of_order_resends += resent
            highest = max(highest, n)
    return tally


@dataclass
class MemberTally:
    expected: int = 0
    lost: int = 0
    twice: int = 0
    twice_in_window: int = 0
    out_of_order: int = 0
    wrong_id: int = 0
    missing: list[tuple[int, int]] = field(default_factory=list)  # lost offsets as (first, last) ranges


def tally_member(handled: list[tuple[int, str]], log: dict[int, str], after: int, head: int,
                 restarts: set[int] = frozenset()) -> MemberTally:  # type: ignore[assignment]
    """One member against the log: offsets ``(after, head]`` each handled once, in order.

    ``restarts`` are indexes into ``handled`` where a recreated client handled
    its first message: a repeat of the message handled just before is the
    at-least-once window (handler ran, offset not yet stored), counted apart.
    """
    tally = MemberTally(expected=max(0, head - after))
    seen: set[int] = set()
    highest = 0
    for index, (offset, message_id) in enumerate(handled):
        if log.get(offset, message_id) != message_id:
            tally.wrong_id += 1
        if offset in seen:
            if index in restarts and index > 0 and handled[index - 1][0] == offset:
                tally.twice_in_window += 1
            else:
                tally.twice += 1
            continue
        if offset < highest:
            tally.out_of_order += 1
        seen.add(offset)
        highest = max(highest, offset)
    lost = [offset for offset in range(after + 1, head + 1) if offset not in seen]
    tally.lost = len(lost)
    for offset in lost:
        if tally.missing and tally.missing[-1][1] == offset - 1:
            tally.missing[-1] = (tally.missing[-1][0], offset)
        else:
            tally.missing.append((offset, offset))
    del tally.missing[10:]
    return tally
