"""Per-connection limits, as pure decisions: a token bucket and the counts a
connection may hold. ``server.py`` asks them and answers ``LIMIT_EXCEEDED``
(2007) when they say no; nothing here touches a socket or reads a clock.

Why per connection: one client must not be able to take the server's event
loop (a flood of messages), its memory (thousands of rooms, thousands of
handlers at once) or other clients' share of either. The over-limit answer is
an ordinary failed reply, never a disconnect: the client learns which limit
it hit and nothing it sent is silently dropped.

Why a refusal holds back what follows: a client whose outbox promises order
(ours) has up to a flush window of messages in flight behind a refused one,
and the bucket refills in milliseconds, so a later message could be handled
before the refused one comes again. For a connection whose handshake says
it keeps order and sends a refused message again (``auth.ordered: true``,
which our client sends; a Shotx JavaScript client does not) a
refusal *holds* the stream: every later message with an id is refused too
(without taking a token) until the refused id arrives again. Built-in
requests (joins, leaves) are not part of the stream and are never held.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)  # slots: read and written per message
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; one per message.

    >>> bucket = TokenBucket(rate=10, burst=2, tokens=2, stamp=0.0)
    >>> [bucket.take(0.0), bucket.take(0.0), bucket.take(0.0), bucket.take(0.1)]
    [True, True, False, True]
    """

    rate: float
    burst: float
    tokens: float = -1.0  # -1: full at the first take
    stamp: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(frozen=True)
class Limits:
    """What one connection may do; ``None`` switches a limit off.

    ``messages_per_second`` with a burst of ``message_burst``;
    ``handlers_at_once``: messages of one connection being handled at the
    same time; ``rooms``: rooms one connection may be in.
    """

    # A flush of an offline outbox runs at ~2,000 a second (bench): 10,000 queued
    # messages must flush without a refusal, a flood of more must not take the loop.
    messages_per_second: float | None = 5000.0
    message_burst: int = 10_000
    handlers_at_once: int | None = 256
    rooms: int | None = 1000

    def bucket(self) -> TokenBucket | None:
        if self.messages_per_second is None:
            return None
        return TokenBucket(self.messages_per_second, max(1, self.message_burst))


@dataclass(slots=True)
class ConnectionUse:
    """What one connection uses now, against its :class:`Limits`."""

    limits: Limits
    bucket: TokenBucket | None = None
    running: int = 0
    ordered: bool = False  # auth.ordered: the client resends in order, so a refusal holds the stream
    held: str | None = None  # the id refused first: later ones wait for it to come again

    def __post_init__(self) -> None:
        self.bucket = self.limits.bucket()

    def admit(self, now: float, in_order: str | None = None) -> str | None:
        """None to handle a message now (counted as running), or why not.

        ``in_order`` is the id of a message in the client's ordered stream
        (None for built-ins and messages without an id).

        >>> use = ConnectionUse(Limits(messages_per_second=1, message_burst=1), ordered=True)
        >>> use.admit(0.0, "a") is None, use.admit(0.0, "b") is not None, use.held
        (True, True, 'b')
        >>> use.admit(5.0, "c")
        'Limit exceeded: an earlier message of this connection was refused; send it again first'
        >>> use.admit(5.0, "b") is None, use.held
        (True, None)
        """
        if self.ordered and in_order is not None and self.held is not None:
            if in_order != self.held:
                return "Limit exceeded: an earlier message of this connection was refused; send it again first"
            self.held = None
        refused = self._refusal(now)
        if refused is not None and self.ordered and in_order is not None:
            self.held = in_order
        return refused

    def _refusal(self, now: float) -> str | None:
        if self.bucket is not None and not self.bucket.take(now):
            return (f"Limit exceeded: more than {self.limits.messages_per_second:g} messages a second "
                    f"(burst {self.limits.message_burst})")
        if self.limits.handlers_at_once is not None and self.running >= self.limits.handlers_at_once:
            return f"Limit exceeded: more than {self.limits.handlers_at_once} messages in progress"
        self.running += 1
        return None

    def finished(self) -> None:
        self.running = max(0, self.running - 1)

    def may_join(self, rooms_now: int) -> str | None:
        """None if one more room is allowed, or why not."""
        if self.limits.rooms is not None and rooms_now >= self.limits.rooms:
            return f"Limit exceeded: at most {self.limits.rooms} rooms per connection"
        return None
