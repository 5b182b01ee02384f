"""Limits on the client's outbox, as pure decisions: how much it may hold,
and what to do when the server answers a send 2007 (``LIMIT_EXCEEDED``).

Theory of operation
-------------------
* **Bounds.** The outbox holds at most ``max_queued`` messages and
  ``max_queued_bytes`` bytes (each message counted at its encoded size, the
  size ``max_message_size`` bounds), restored records included. A send that
  would go past either is refused with :class:`~shotx.client.errors.OutboxFull`
  before anything of it is stored; what is queued stays queued.
  :class:`OutboxBounds` decides.
* **2007 is "not handled, send again later".** The server refused the
  message before its handler ran (too many a second, too many in progress),
  so the record stays in the outbox. :class:`Throttle` pauses the flush at
  the first refusal and gives the delay to wait: exponential with jitter,
  growing while refusals come without a message getting through, back to the
  start once one does. The flush resumes when the delay has passed *and*
  every message in flight has its answer, re-emitting the refused records
  first, in outbox order.
* **Order.** Messages after a refused one are in flight already. Our server
  holds them back: once it refused a message of a client that keeps order
  (ours, which names itself in the handshake), it refuses every later one of
  that connection until the refused one comes again (``server/limits.py``).
  So every record after the refused one is refused too, comes back into the
  outbox, and is re-emitted behind it: nothing overtakes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from . import protocol
from .core import Backoff
from .errors import OutboxFull

DEFAULT_MAX_QUEUED: Final = 10_000
DEFAULT_MAX_QUEUED_BYTES: Final = 50 * 1024 * 1024
# 2007 waits: short at first (a token bucket refills in milliseconds), at most the reconnection maximum.
LIMIT_DELAY_INITIAL: Final = 0.1
LIMIT_DELAY_MAX: Final = 30.0


def _check_bound(name: str, value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"{name} must be a positive int or None (unbounded), not {value!r}")


@dataclass(frozen=True)
class OutboxBounds:
    """How much the outbox may hold; ``None`` leaves a bound off.

    >>> bounds = OutboxBounds(max_queued=2, max_queued_bytes=100)
    >>> bounds.refusal(queued=1, queued_bytes=50, size=50) is None
    True
    >>> bounds.refusal(queued=2, queued_bytes=50, size=1).reason
    'count'
    >>> bounds.refusal(queued=1, queued_bytes=50, size=51).reason
    'bytes'
    """

    max_queued: int | None = DEFAULT_MAX_QUEUED
    max_queued_bytes: int | None = DEFAULT_MAX_QUEUED_BYTES

    def __post_init__(self) -> None:
        _check_bound("max_queued", self.max_queued)
        _check_bound("max_queued_bytes", self.max_queued_bytes)

    def refusal(self, queued: int, queued_bytes: int, size: int) -> OutboxFull | None:
        """Why one more message of ``size`` bytes may not be queued, or None."""
        if self.max_queued is not None and queued + 1 > self.max_queued:
            return OutboxFull("count", f"OUTBOX_FULL: {queued} messages queued (max_queued={self.max_queued})")
        if self.max_queued_bytes is not None and queued_bytes + size > self.max_queued_bytes:
            return OutboxFull("bytes", f"OUTBOX_FULL: {queued_bytes} bytes queued + {size} bytes "
                                       f"> max_queued_bytes={self.max_queued_bytes}")
        return None


def is_limit_refusal(reply: Any) -> bool:
    """Is this ack the server's 2007: the message was not handled?

    >>> is_limit_refusal({"meta": {"success": False, "code": 2007, "error": "Limit exceeded"}, "data": None})
    True
    >>> is_limit_refusal({"meta": {"success": False, "code": 2004, "error": "boom"}, "data": None})
    False
    """
    meta = reply.get("meta") if isinstance(reply, dict) else None
    return (isinstance(meta, dict) and meta.get("success") is False
            and type(meta.get("code")) is int and meta["code"] == protocol.LIMIT_EXCEEDED)


@dataclass
class Throttle:
    """When to pause a flush the server answered 2007, and for how long.

    >>> throttle = Throttle(rand=lambda: 0.5)
    >>> throttle.refuse("a"), throttle.refuse("b"), throttle.paused
    (0.1, None, True)
    >>> sorted(throttle.resume()), throttle.paused
    (['a', 'b'], False)
    >>> throttle.refuse("a")   # refused again, nothing got through: wait longer
    0.2
    >>> _ = throttle.resume(); throttle.admitted(); throttle.refuse("c")
    0.1
    """

    initial: float = LIMIT_DELAY_INITIAL
    maximum: float = LIMIT_DELAY_MAX
    randomization: float = 0.5
    rand: Callable[[], float] = random.random
    paused: bool = False
    refused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._backoff = Backoff(self.initial, self.maximum, self.randomization, rand=self.rand)

    def refuse(self, record_id: str) -> float | None:
        """Note a 2007; the delay to wait when it starts a pause, else None (paused already)."""
        self.refused.add(record_id)
        if self.paused:
            return None
        self.paused = True
        return self._backoff.next_delay()

    def admitted(self) -> None:
        """A message was handled: the server has room again, so the next pause starts short.
        During a pause it says nothing (that message went out before the refusal)."""
        if not self.paused:
            self._backoff.reset()

    def resume(self) -> set[str]:
        """End the pause; the records refused during it, to emit again first."""
        refused, self.refused, self.paused = self.refused, set(), False
        return refused

    def reset(self) -> None:
        """A new connection: a new allowance on the server, nothing refused on it yet."""
        self.resume()
        self._backoff.reset()
