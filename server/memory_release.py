"""Giving memory back to the system after many connections closed (issue 10 point 3).

Why: once a closed connection's objects (its aiohttp request, WebSocket,
zlib compressor with permessage-deflate, engine.io socket) are freed,
glibc's allocator keeps the memory: after 5,000 clients came and went, RSS
stayed well above what it was before. glibc's ``malloc_trim(0)`` returns it.
No full ``gc.collect()`` first: with ``engineio_sockets.py``'s sockets no
reference cycle holds a connection (a full collection after 5,000 clients
freed 95 objects), and one cost about 50 ms of CPU against 1 ms for the
trim, holding the event loop.

The trim holds the event loop too, so it never runs per
disconnect: :class:`ReleasePolicy` (pure, unit-tested) asks for one pass
once ``every`` connections have closed since the last, when no connection
has closed for ``quiet`` seconds (the churn has settled), or at once when
``4 × every`` have closed without such a pause. :class:`MemoryRelease` is
the thin loop driver. On other platforms than Linux with glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import platform
import sys
from collections.abc import Callable
from enum import Enum


class Due(Enum):
    NO = "no"  # not enough connections closed since the last pass
    WHEN_QUIET = "when quiet"  # once no connection has closed for a while
    NOW = "now"  # churn never settles: do not wait any longer


class ReleasePolicy:
    """When to give memory back, counted in closed connections since the last pass."""

    def __init__(self, every: int = 500) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every!r}")
        self.every = every
        self.closed_since = 0

    def closed(self) -> Due:
        """One more connection closed: is a pass due?"""
        self.closed_since += 1
        if self.closed_since >= 4 * self.every:
            return Due.NOW
        return Due.WHEN_QUIET if self.closed_since >= self.every else Due.NO

    def released(self) -> None:
        self.closed_since = 0


def glibc_malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` (returns free heap memory to the system), or None off Linux/glibc."""
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


class MemoryRelease:
    """Runs :class:`ReleasePolicy`'s passes on the running loop; :meth:`connection_closed` per disconnect."""

    def __init__(self, every: int = 500, quiet: float = 0.1) -> None:
        self.policy = ReleasePolicy(every)
        self.quiet = quiet
        self.passes = 0
        self._trim = glibc_malloc_trim()
        self._timer: asyncio.TimerHandle | None = None

    def connection_closed(self) -> None:
        """Count a closed connection; schedule (or push back) a pass when one is due. O(1), no I/O."""
        due = self.policy.closed()
        if due is Due.NO:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = 0.0 if due is Due.NOW else self.quiet
        self._timer = loop.call_later(delay, self.release)

    def release(self) -> None:
        """One pass now: the allocator's free memory back to the system."""
        self._timer = None
        self.policy.released()
        if self._trim is not None:
            self._trim()
        self.passes += 1
