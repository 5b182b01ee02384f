"""Retention and reply expiry over many rows and rooms, on a real SQLite file and the real Redis.

On SQLite, retention by age and reply expiry run in committed batches
(other tasks run between them, and the right rows are left), the cache of
rooms' bounds is bounded, and a room that left it reads back exactly the
bounds it had; on Redis, each script call drops a bounded number.
"""

import asyncio
import json

from shotx.server import SqliteStore
from shotx.server.sqlite_store import AGE_BATCH, REPLY_BATCH


async def opened(path, **options):
    store = SqliteStore(path, **options)
    await store.open()
    return store


async def fill(store, rooms, per_room, ts_of):
    """``rooms * per_room`` appends, a room's offsets in time order, a thousand per commit."""
    made = 0
    for n in range(per_room):
        for room in range(rooms):
            await store.append(f"room-{room}", "t", json.dumps(n), f"{room}-{n}", ts_of(n), n % 7 == 0, 10**9)
            made += 1
            if made % 1000 == 0:
                await store.flushed()
    await store.flushed()


def count_commits(store):
    """Wrap the group commit: how many writes each commit held."""
    sizes, commit = [], store.commits.commit

    def counted():
        sizes.append(len(store.commits.pending))
        commit()
    store.commits.commit = counted
    return sizes


async def ticking(stop):
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(0)
        ticks += 1
    return ticks


async def test_age_retention_and_reply_expiry_run_in_batches_and_leave_the_right_rows(tmp_path):
    path = tmp_path / "many.sqlite3"
    store = await opened(path)
    rooms, per_room = 50, 1000  # 50,000 rows: offsets 1..600 of each room are old, 601..1000 are not
    await fill(store, rooms, per_room, lambda n: 100.0 + n)
    # 20,000 old replies, 10,000 newer (written straight in: remember's own path is tested elsewhere)
    store.db.executemany("INSERT INTO replies (principal, id, reply, ts) VALUES (?, ?, ?, ?)",
                         [("p", f"m{n}", '"r"', 10.0 + n) for n in range(30_000)])
    sizes, stop = count_commits(store), asyncio.Event()
    ticker = asyncio.ensure_future(ticking(stop))
    assert await store.drop_older_than(100.0 + 600) == rooms * 600
    assert await store.forget_replies_before(10.0 + 20_000) == 20_000
    stop.set()
    ticks = await ticker
    age_batches = rooms * 600 // AGE_BATCH
    assert len(sizes) >= age_batches + 20_000 // REPLY_BATCH  # one commit per batch at least
    assert max(sizes) <= max(REPLY_BATCH, 2 * AGE_BATCH)  # no commit holds more than a batch
    assert ticks >= len(sizes)  # the loop turned between batches: other tasks ran
    for room in (0, 17, 49):
        bounds = await store.bounds(f"room-{room}")
        assert (bounds.head, bounds.floor) == (1000, 600)
        assert [e.offset for e in await store.read(f"room-{room}", 0, 2000)] == list(range(601, 1001))
    assert store.db.execute("SELECT COUNT(*) FROM room_log").fetchone()[0] == rooms * 400
    assert store.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 10_000
    assert await store.recall("p", "m19999") is None and await store.recall("p", "m20000") == '"r"'
    assert await store.drop_older_than(100.0 + 600) == 0  # nothing left to drop: one index probe
    await store.close()
    again = await opened(path)
    try:
        bounds = await again.bounds("room-3")
        assert (bounds.head, bounds.floor, bounds.delivered) == (1000, 600, 995)
        assert (await again.append("room-3", "t", "1", "x", 2000.0, False, 10**9)).offset == 1001
    finally:
        await again.close()


async def test_age_retention_empties_rooms_that_are_not_cached_and_keeps_their_bounds(tmp_path):
    """A log retention by age empties keeps its head, floor and mark in its row, cached or not."""
    path = tmp_path / "empty.sqlite3"
    store = await opened(path, room_cache=4)
    await fill(store, 10, 30, lambda n: 1.0)  # more rooms than the cache holds
    assert store.cached_rooms == 4
    assert await store.drop_older_than(2.0) == 300
    for room in range(10):
        bounds = await store.bounds(f"room-{room}")
        assert (bounds.head, bounds.floor, bounds.delivered) == (30, 30, 29)
        assert await store.read(f"room-{room}", 0, 10) == []
    assert (await store.append("room-0", "t", "1", "new", 5.0, False, 10)).offset == 31
    await store.close()
    again = await opened(path)
    try:
        assert [(await again.bounds(f"room-{room}")).head for room in range(10)] == [31] + [30] * 9
    finally:
        await again.close()


async def test_rooms_leave_the_cache_and_come_back_with_the_same_bounds(tmp_path):
    """An LRU of ``room_cache`` rooms: a room that left it (with rows below its floor not yet
    swept, a mark moved by a backlog delivery, a write pending) reads back what it had."""
    path = tmp_path / "lru.sqlite3"
    store = await opened(path, room_cache=8)
    seen = {}
    for room in range(40):
        name = f"r{room}"
        for n in range(1, 151):  # retention by count keeps 30: a sweep of 100 happened, 20 rows wait
            await store.append(name, "t", str(n), f"{name}-{n}", 1.0, n == 5, 30)
        await store.mark_delivered(name, 140)
        seen[name] = await store.bounds(name)
        assert store.cached_rooms <= 8
    await store.append("r0", "t", "x", "pending", 1.0, False, 30)  # loads r0 again, evicting another
    assert (await store.bounds("r0")).head == 151
    for room in range(1, 40):  # every other one read back from the file
        name = f"r{room}"
        assert await store.bounds(name) == seen[name]
        assert [e.offset for e in await store.read(name, 0, 200)] == list(range(121, 151))
        assert store.cached_rooms <= 8
    assert store.db.execute("SELECT COUNT(*) FROM room_log WHERE room = 'r1'").fetchone()[0] == 30
    await store.close()
    again = await opened(path)
    try:
        assert await again.bounds("r7") == seen["r7"]
    finally:
        await again.close()


async def test_rooms_only_read_leave_the_cache_without_a_write(tmp_path):
    """Joins read bounds; a room that leaves the cache as it came in costs no write (each one a
    row rewritten in the next commit, for rooms nobody sent to)."""
    path = tmp_path / "read-only.sqlite3"
    store = await opened(path, room_cache=4)
    for room in range(12):
        await store.append(f"r{room}", "t", "1", f"r{room}-1", 1.0, False, 30)
    await store.close()
    store = await opened(path, room_cache=4)
    try:
        for room in [*range(12), *range(8)]:  # rooms cached at the close had no row: each leaves once
            await store.bounds(f"r{room}")
        await store.flushed()
        before = store.db.total_changes
        for _ in range(3):
            for room in range(12):  # three times round, every room evicted each time
                assert (await store.bounds(f"r{room}")).head == 1
        await store.flushed()
        assert store.db.total_changes == before
        await store.mark_delivered("r0", 1)  # a changed one is still written when it leaves
        for room in range(1, 6):
            await store.bounds(f"r{room}")
        await store.flushed()
        assert store.db.execute("SELECT delivered FROM rooms WHERE room = 'r0'").fetchone()[0] == 1
    finally:
        await store.close()


async def test_redis_passes_run_in_bounded_script_calls_and_leave_the_right_entries(redis_url, redis_prefix):
    """A Lua script holds Redis for everyone: each call drops at most ``SCRIPT_BATCH``."""
    from shotx.server.redis_store import SCRIPT_BATCH, RedisStore

    store = RedisStore(redis_url, prefix=redis_prefix)
    await store.open()
    try:
        old = 2 * SCRIPT_BATCH + 300
        for n in range(1, old + 101):  # old entries, then 100 newer ones, in one room; a little room too
            await store.append("big", "t", str(n), str(n), 1.0 if n <= old else 50.0, False, 10**6)
        await store.append("small", "t", "1", "s1", 1.0, False, 10)
        for n in range(old):
            await store.remember("p", f"m{n}", '"r"', 1.0)
        await store.remember("p", "keep", '"r"', 50.0)
        calls, script = [], store._scripts["drop"]

        async def counted(**kwargs):
            went = await script(**kwargs)
            calls.append(int(went))
            return went
        store._scripts["drop"] = counted
        assert await store.drop_older_than(10.0) == old + 1
        assert max(calls) == SCRIPT_BATCH and len(calls) >= 4  # three calls for "big", one for "small"
        assert [e.offset for e in await store.read("big", 0, 200)] == list(range(old + 1, old + 101))
        assert (await store.bounds("big")).floor == old and await store.read("small", 0, 10) == []
        assert await store.forget_replies_before(10.0) == old
        assert await store.recall("p", "m0") is None and await store.recall("p", "keep") == '"r"'
    finally:
        await store.close()


async def test_a_file_whose_replies_are_keyed_by_principal_first_is_rekeyed_at_open(tmp_path):
    """Earlier files keyed replies (principal, id); opening one keeps every reply, keyed by id first."""
    import sqlite3

    path = tmp_path / "old-keys.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE replies (principal TEXT NOT NULL, id TEXT NOT NULL, reply TEXT NOT NULL, ts REAL NOT NULL,
                              PRIMARY KEY (principal, id)) WITHOUT ROWID;
        INSERT INTO replies VALUES ('p', 'm1', '"one"', 5.0), ('q', 'm1', '"two"', 6.0);
        PRAGMA user_version = 3;""")
    db.close()
    store = await opened(path)
    try:
        assert (await store.recall("p", "m1"), await store.recall("q", "m1")) == ('"one"', '"two"')
        keys = {row[1]: row[5] for row in store.db.execute("PRAGMA table_info(replies)")}
        assert (keys["id"], keys["principal"]) == (1, 2)
        assert await store.forget_replies_before(5.5) == 1 and await store.recall("q", "m1") == '"two"'
    finally:
        await store.close()
