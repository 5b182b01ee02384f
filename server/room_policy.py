"""Room-log policy with no I/O: what a join replays and what its answer says.

The server holds a per-room lock around "enter the room, read the log, emit
the replay" and around "append, broadcast", so a joiner sees every message
exactly once in offset order: anything appended before the read is in the
replay, anything after it arrives live. This module only does the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .store import RoomBounds


@dataclass(frozen=True)
class JoinPlan:
    """``replay_after``: replay offsets above it; ``missed``: lost to retention."""

    room: str
    since: int | None
    replay_after: int
    head: int
    missed: int

    @property
    def marks_backlog_delivered(self) -> bool:
        """A join without ``since`` takes the Shotx backlog, so nobody gets it twice."""
        return self.since is None and self.head > self.replay_after

    def answer(self, replayed: int) -> dict[str, Any]:
        """The join ack's data: a Shotx peer ignores it, our client reads it."""
        return {"room": self.room, "since": self.since, "head": self.head,
                "replayed": replayed, "missed": self.missed}


def plan_join(room: str, since: int | None, bounds: RoomBounds) -> JoinPlan:
    """Decide the replay for a join.

    >>> plan_join("r", None, RoomBounds(head=5, floor=0, delivered=2)).replay_after
    2
    >>> p = plan_join("r", 1, RoomBounds(head=9, floor=4, delivered=9))
    >>> p.replay_after, p.missed
    (4, 3)
    >>> plan_join("r", 12, RoomBounds(head=9)).replay_after  # the log was reset
    9
    """
    start = bounds.delivered if since is None else min(since, bounds.head)
    missed = max(0, bounds.floor - start)
    return JoinPlan(room, since, max(start, bounds.floor), bounds.head, missed)


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
