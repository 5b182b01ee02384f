"""Shared delivery's subscription comes back after Redis was unreachable: nothing appended meanwhile is missed.

Redis publishes at most once, so after its stream fails, shared delivery
reads the log for what it missed (catch-up). Defect: it read the log first
and subscribed again after, so an entry appended between the two was
neither read nor heard. It reached the members here only once a later
entry arrived (its gap filled from the log then), and the last entry of a
burst not at all. Found by reading the delivery loop for the Redis-restart
fault test (a Redis that comes back empty is exactly such a failure).

Deterministic: the delivery side's store reaches the machine's Redis through
the fault proxy, which the test makes refuse connections (Redis is
unreachable) and then lets through again at the stream's second failure
(a logging handler, synchronous with the failure); the entry is appended
right after the catch-up, whenever that comes.
"""

from __future__ import annotations

import asyncio
import logging

from shotx.server import RedisStore, shared_delivery
from shotx.server.room_locks import RoomLocks
from shotx.server.shared_delivery import SharedDelivery
from shotx.server.store import LogEntry

from fault_processes import REDIS_URL
from proxy import FaultProxy

DELIVERED_WITHIN = 10.0  # seconds: on loopback a live entry takes milliseconds; this is the failure's deadline


class Sent:
    """What the delivery side sent to members here, with a wake-up for whoever waits for an offset."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.moved = asyncio.Event()

    async def send(self, entry: LogEntry) -> None:
        self.sent.append((entry.offset, entry.id))
        self.moved.set()

    async def offset(self, offset: int) -> bool:
        """Whether ``offset`` is sent within ``DELIVERED_WITHIN`` (a bound on the wait, not a pause)."""
        async def reached() -> None:
            while offset not in [sent for sent, _ in self.sent]:
                self.moved.clear()
                await self.moved.wait()
        try:
            await asyncio.wait_for(reached(), DELIVERED_WITHIN)
        except asyncio.TimeoutError:
            return False
        return True


class OnStreamFailure(logging.Handler):
    """Calls ``then`` at the ``count``-th "the store's stream failed" warning."""

    def __init__(self, count: int, then) -> None:
        super().__init__(logging.WARNING)
        self.count, self.then, self.seen = count, then, 0

    def emit(self, record: logging.LogRecord) -> None:
        if "stream failed" in record.getMessage():
            self.seen += 1
            if self.seen == self.count:
                self.then()


async def test_an_entry_appended_right_after_the_catch_up_is_delivered(redis_prefix, monkeypatch):
    monkeypatch.setattr(shared_delivery, "RETRY_FIRST", 0.01)
    redis_port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    proxy = await FaultProxy.start([("127.0.0.1", redis_port)], 1, max_delay=0)
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", prefix=redis_prefix)
    writer = RedisStore(REDIS_URL, prefix=redis_prefix)
    await store.open()
    await writer.open()
    sent = Sent()
    shared = SharedDelivery(store, RoomLocks(), sent.send, lambda room: True)
    caught_up, appended = shared.catch_up, []

    async def catch_up_then_append() -> None:
        await caught_up()
        if proxy.upstreams and not appended:  # Redis reachable again: the first catch-up that reads the log
            appended.append(await writer.append("r", "n", "{}", "after-catch-up", 1.0, False, 100))

    monkeypatch.setattr(shared, "catch_up", catch_up_then_append)
    reachable = OnStreamFailure(2, lambda: setattr(proxy, "upstreams", [("127.0.0.1", redis_port)]))
    logging.getLogger("shotx.server").addHandler(reachable)
    running = asyncio.ensure_future(shared.run())
    try:
        await shared.joined("r", 0, (await store.bounds("r")).epoch)
        await writer.append("r", "n", "{}", "first", 1.0, False, 100)
        assert await sent.offset(1), "the stream delivers nothing at all"
        proxy.upstreams = []  # Redis unreachable: the subscription's reconnect is refused
        proxy.cut()
        assert await sent.offset(2), f"offset 2, appended after the catch-up, was not delivered: {sent.sent}"
        assert sent.sent == [(1, "first"), (2, "after-catch-up")] and reachable.seen >= 2
    finally:
        logging.getLogger("shotx.server").removeHandler(reachable)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await shared.close()
        await store.close()
        await writer.close()
        await proxy.close()
