"""Room-log policy with no I/O: what a join replays and what its answer says.

The server holds a room's lock from "enter the room, read the log" until the
replay has been queued behind the join's answer (``server.py``), so a joiner
sees every message exactly once in offset order: anything appended before
the read is in the replay, anything after it arrives live, after the replay.
This module only does the arithmetic.

Histories. A room log has an ``epoch``: the identity of its history, made
when the store first saw the room. A client sends the epoch its offset
belongs to; when the server's log has another one (it was restarted on an
empty SQLite file, Redis was flushed, a memory store restarted), that offset
means nothing here, and the join replays the new history from its start
instead of skipping its first ``since`` messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shotx.client.protocol import RESET_LOG_BEHIND, RESET_NEW_HISTORY

from .store import RoomBounds


@dataclass(frozen=True)
class JoinPlan:
    """``replay_after``: replay offsets above it; ``missed``: lost to retention."""

    room: str
    since: int | None
    replay_after: int
    head: int
    missed: int
    epoch: str = ""
    reset: str | None = None

    @property
    def marks_backlog_delivered(self) -> bool:
        """A join without ``since`` takes the Shotx backlog, so nobody gets it twice."""
        return self.since is None and self.head > self.replay_after

    def answer(self, replayed: int, until: int | None = None) -> dict[str, Any]:
        """The join ack's data: a Shotx peer ignores it, our client reads it.

        ``after`` is where the replay starts (the offset our client takes as
        its position before the replay arrives); ``replayed`` messages follow
        the answer, the last at offset ``until``.
        """
        answer = {"room": self.room, "since": self.since, "head": self.head, "replayed": replayed,
                  "missed": self.missed, "after": self.replay_after,
                  "until": self.replay_after if until is None else until, "epoch": self.epoch}
        if self.reset is not None:
            answer["reset"] = self.reset
        return answer


def plan_join(room: str, since: int | None, bounds: RoomBounds, epoch: str | None = None) -> JoinPlan:
    """Decide the replay for a join.

    >>> plan_join("r", None, RoomBounds(head=5, floor=0, delivered=2)).replay_after
    2
    >>> p = plan_join("r", 1, RoomBounds(head=9, floor=4, delivered=9))
    >>> p.replay_after, p.missed
    (4, 3)
    >>> plan_join("r", 12, RoomBounds(head=9)).replay_after  # the log ends before our offset
    9
    >>> p = plan_join("r", 50, RoomBounds(head=60, epoch="b"), epoch="a")  # another history
    >>> p.replay_after, p.reset
    (0, 'new_history')
    """
    reset = None
    if since is None:
        start = bounds.delivered
    elif epoch is not None and epoch != bounds.epoch:
        start, reset = 0, RESET_NEW_HISTORY
    elif since > bounds.head:
        start, reset = bounds.head, RESET_LOG_BEHIND
    else:
        start = since
    missed = max(0, bounds.floor - start)
    return JoinPlan(room, since, max(start, bounds.floor), bounds.head, missed, bounds.epoch, reset)


def retention_cutoff(now: float, max_age: float | None) -> float | None:
    """Timestamp before which room messages are dropped, or None to keep all."""
    return None if max_age is None else now - max_age


def is_refusal(auth: Any) -> bool:
    """JavaScript falsiness, as Shotx tests it: an empty dict still authenticates.

    >>> [is_refusal(v) for v in (None, False, 0, "", {}, [], "u")]
    [True, True, True, True, False, False, False]
    """
    if auth is None or auth is False or auth == "":
        return True
    return isinstance(auth, (int, float)) and not isinstance(auth, bool) and auth == 0
