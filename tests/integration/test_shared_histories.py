"""Shared delivery across a replaced room log, driven step by step on the real Redis.

``SharedDelivery`` here runs on a real ``RedisStore`` (a prefix of the
test's own); what it sends and whom it sends away are collected as they
happen. The orderings are made deterministic with an eagerly started task
(it runs until it waits for the room's lock), not with sleeps.
"""

from __future__ import annotations

import asyncio

from shotx.server import RedisStore, shared_delivery
from shotx.server.room_locks import RoomLocks
from shotx.server.shared_delivery import SharedDelivery
from shotx.server.store import LogEntry


class Delivered:
    """What the delivery side did: entries sent to members here, rooms whose members were sent away."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.away: list[str] = []

    async def send(self, entry: LogEntry) -> None:
        self.sent.append((entry.offset, entry.id))

    async def replaced(self, room: str, keep: str | None) -> None:
        self.away.append(room)


async def opened(redis_url: str, prefix: str) -> RedisStore:
    store = RedisStore(redis_url, prefix=prefix)
    await store.open()
    return store


async def test_an_old_history_entry_that_waited_for_a_join_of_the_new_one_is_not_delivered(redis_url,
                                                                                          redis_prefix):
    """Defect: ``deliver`` compared an entry's epoch with the room's before taking the room's lock.
    An entry of the old history (still in the subscription's buffer when Redis came back empty)
    that waited for the lock while a join took the new history as the room's was then delivered
    as the new history's: the log's new entries up to its offset were read and sent with it."""
    store = await opened(redis_url, redis_prefix)
    try:
        for n in (1, 2, 3):  # the new history, which the join below sees
            await store.append("r", "n", "{}", f"new-{n}", 1.0, False, 100)
        new_epoch = (await store.bounds("r")).epoch
        done, locks = Delivered(), RoomLocks()
        shared = SharedDelivery(store, locks, done.send, lambda room: True, done.replaced)
        await shared.joined("r", 150, "old-epoch")  # members here are at 150 of the old history
        release = await locks.acquire("r")  # a join of the new history holds the room
        late = asyncio.eager_task_factory(asyncio.get_running_loop(), shared.deliver(
            LogEntry("r", 151, "old-151", "n", "{}", 1.0, "old-epoch")))  # runs until it waits for the lock
        assert not late.done()
        await shared.joined("r", 3, new_epoch, joiner="joiner")  # sends the old members away
        release()
        await late
        assert done.sent == [] and done.away == ["r", "r"]  # the late entry sends the new member away too
    finally:
        await store.close()


async def test_a_replaced_history_drops_the_old_ones_pending_delivered_mark(redis_url, redis_prefix, monkeypatch):
    """A delivered mark of the old history written into the new one would hide its first
    entries from a join without ``since`` (the Shotx backlog) though nobody got them."""
    monkeypatch.setattr(shared_delivery, "MARK_DELAY", 3600.0)  # pending until close() writes it
    store = await opened(redis_url, redis_prefix)
    try:
        done, locks = Delivered(), RoomLocks()
        shared = SharedDelivery(store, locks, done.send, lambda room: True, done.replaced)
        epoch = (await store.bounds("m")).epoch
        await shared.joined("m", 0, epoch)
        await shared.deliver(LogEntry("m", 1, "old-1", "n", "{}", 1.0, epoch))  # delivered here, mark pending
        await store.redis.delete(*[key async for key in store.redis.scan_iter(match=f"{redis_prefix}:room:m:*")])
        for n in (1, 2):  # the new history, seen first by this process through a join
            await store.append("m", "n", "{}", f"new-{n}", 1.0, False, 100)
        await shared.joined("m", 2, (await store.bounds("m")).epoch, joiner="joiner")
        await shared.close()  # writes whatever marks are pending
        assert done.away == ["m"] and (await store.bounds("m")).delivered == 0
    finally:
        await store.close()
