"""How long retention and reply expiry hold the event loop, on a million-row log.

``.venv/bin/python bench/retention.py [--rows 1000000] [--rooms 1000] [--replies 500000] [--redis URL]``

Builds a real SQLite file (in a temporary directory) with ``--rows`` room
messages over ``--rooms`` rooms, 80 % of them older than the retention
cutoff, and ``--replies`` remembered replies, 80 % of them expired; then runs
the store's own passes (``drop_older_than``, ``forget_replies_before``, as
``SxServer.apply_retention`` does) while a ticker task on the same loop
records the longest gap between its turns: the longest the loop was held.
For comparison it then times, on a second file built the same way, the one
statement each pass would be without batches (``DELETE ... WHERE ts < ?``).
With ``--redis`` the same passes run against a ``RedisStore`` (keys under a
prefix of its own, deleted afterwards), where the figure that matters is the
longest single Redis command, since a Lua script holds Redis for every
other client while it runs.

CPU figures are printed beside the wall clock: on a loaded machine a
wall-clock stall includes other processes' turns on the CPU, while its CPU
figure (this thread's ``time.thread_time()`` over the same gap) leaves them
out, and also leaves out waits for the disk (an fsync in a WAL checkpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from shotx.server import SqliteStore

NOW = 1_000_000.0
OLD_SHARE = 0.8


class Ticker:
    """A task that turns the loop as often as it can and keeps the longest gap between turns."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_cpu = 0.0  # the same gap in this thread's CPU time: without other processes' turns
        self.turns = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        self._stop = True

    async def _run(self) -> None:
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not self._stop:
            await asyncio.sleep(0)
            now, cpu = time.perf_counter(), time.thread_time()
            self.longest, last = max(self.longest, now - last), now
            self.longest_cpu, last_cpu = max(self.longest_cpu, cpu - last_cpu), cpu
            self.turns += 1

    async def stopped(self) -> None:
        self._stop = True
        if self._task is not None:
            await self._task


async def timed_pass(name: str, run: Any) -> dict[str, float]:
    """One pass (``await run()``) with the ticker beside it: its rows, times and the longest loop stall."""
    ticker = Ticker()
    with ticker:
        wall, cpu = time.perf_counter(), time.process_time()
        rows = await run()
        figures = {f"{name}_rows": rows, f"{name}_s": time.perf_counter() - wall,
                   f"{name}_cpu_s": time.process_time() - cpu}
    await ticker.stopped()
    return figures | {f"{name}_longest_ms": ticker.longest * 1000,
                      f"{name}_longest_cpu_ms": ticker.longest_cpu * 1000, f"{name}_turns": ticker.turns}


def build_sqlite(path: Path, rows: int, rooms: int, replies: int) -> float:
    """The file, written straight through sqlite3 (the passes are measured, not the build)."""
    asyncio.run(_create(path))  # tables and indexes as the store makes them
    db = sqlite3.connect(path)
    per_room, cutoff = rows // rooms, NOW - 1000.0
    old = int(per_room * OLD_SHARE)

    def messages():
        for room in range(rooms):
            for offset in range(1, per_room + 1):
                ts = cutoff - (old - offset + 1) if offset <= old else cutoff + offset
                yield f"room-{room}", offset, f"{room}-{offset}", "t", '{"n":1}', ts, offset % 10 == 0
    db.executemany("INSERT INTO room_log (room, offset, id, type, data, ts, live) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   messages())
    old_replies = int(replies * OLD_SHARE)
    # ids as our client makes them (UUIDv7: time first), from 100 principals, in time order
    db.executemany("INSERT INTO replies (principal, id, reply, ts) VALUES (?, ?, ?, ?)",
                   ((f"p{n % 100}", f"{n:012x}-7{n % 4096:03x}-{uuid.uuid4().hex[:16]}",
                     '{"meta":{"success":true},"data":1}',
                     cutoff - (old_replies - n) if n < old_replies else cutoff + n) for n in range(replies)))
    db.commit()
    db.close()
    return cutoff


async def _create(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.close()


async def measure_sqlite(path: Path, cutoff: float) -> dict[str, float]:
    store = SqliteStore(path)
    await store.open()
    figures: dict[str, float] = {}
    try:
        for name, run in (("retention", lambda: store.drop_older_than(cutoff)),
                          ("expiry", lambda: store.forget_replies_before(cutoff))):
            figures.update(await timed_pass(name, run))
    finally:
        await store.close()
    return figures


def measure_unbatched(path: Path, cutoff: float) -> dict[str, float]:
    """The same deletes as one statement each: how long one call would hold the loop."""
    db = sqlite3.connect(path, isolation_level=None)
    figures = {}
    for name, statement in (("retention", "DELETE FROM room_log WHERE ts < ?"),
                            ("expiry", "DELETE FROM replies WHERE ts < ?")):
        start = time.perf_counter()
        db.execute(statement, (cutoff,))
        figures[f"{name}_one_statement_ms"] = (time.perf_counter() - start) * 1000
    db.close()
    return figures


async def build_redis(store: Any, rows: int, rooms: int, replies: int, cutoff: float) -> None:
    """Streams, bounds and replies laid out as ``RedisStore`` writes them, through pipelines."""
    per_room, old = rows // rooms, int(rows // rooms * OLD_SHARE)
    for room in range(rooms):
        name = f"room-{room}"
        async with store.redis.pipeline(transaction=False) as pipe:
            for offset in range(1, per_room + 1):
                ts = cutoff - (old - offset + 1) if offset <= old else cutoff + offset
                pipe.xadd(store._log_key(name), {"id": f"{room}-{offset}", "type": "t", "data": '{"n":1}',
                                                 "ts": repr(ts)}, id=f"0-{offset}")
            pipe.hset(store._bounds_key(name), mapping={"head": per_room, "floor": 0, "delivered": 0})
            pipe.sadd(store._rooms_key, name)
            await pipe.execute()
    old_replies = int(replies * OLD_SHARE)
    for start in range(0, replies, 10_000):
        batch = {f'["p", "m{n}"]': cutoff - (old_replies - n) if n < old_replies else cutoff + n
                 for n in range(start, min(replies, start + 10_000))}
        async with store.redis.pipeline(transaction=False) as pipe:
            pipe.hset(store._replies_key, mapping={field: '{"data":1}' for field in batch})
            pipe.zadd(store._reply_times_key, batch)
            await pipe.execute()


async def measure_redis(url: str, rows: int, rooms: int, replies: int) -> dict[str, float]:
    """The same passes on a ``RedisStore``; also the longest single script call (Redis held)."""
    from shotx.server.redis_store import RedisStore

    prefix = f"shotx-bench-retention-{uuid.uuid4().hex[:8]}"
    store = RedisStore(url, prefix=prefix)
    await store.open()
    figures: dict[str, float] = {}
    try:
        cutoff = NOW - 1000.0
        await build_redis(store, rows, rooms, replies, cutoff)
        for name, script, run in (("retention", "drop", lambda: store.drop_older_than(cutoff)),
                                  ("expiry", "forget", lambda: store.forget_replies_before(cutoff))):
            longest, inner = [0.0], store._scripts[script]

            async def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await inner(*args, **kwargs)
                finally:
                    longest[0] = max(longest[0], time.perf_counter() - start)
            store._scripts[script] = timed
            figures.update(await timed_pass(name, run))
            figures[f"{name}_longest_script_ms"] = longest[0] * 1000
    finally:
        async for key in store.redis.scan_iter(match=f"{prefix}:*", count=1000):
            await store.redis.delete(key)
        await store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--replies", type=int, default=500_000)
    parser.add_argument("--redis", default=None, help="also measure a RedisStore at this URL")
    parser.add_argument("--redis-rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path, plain = Path(folder) / "batched.sqlite3", Path(folder) / "plain.sqlite3"
        start = time.perf_counter()
        cutoff = build_sqlite(path, args.rows, args.rooms, args.replies)
        build_sqlite(plain, args.rows, args.rooms, args.replies)
        print(f"built 2 files of {args.rows:,} rows in {args.rooms:,} rooms and {args.replies:,} replies "
              f"in {time.perf_counter() - start:.0f} s")
        batched = asyncio.run(measure_sqlite(path, cutoff))
        unbatched = measure_unbatched(plain, cutoff)
    report("SQLite", batched, unbatched)
    if args.redis:
        report("Redis", asyncio.run(measure_redis(args.redis, args.redis_rows, args.rooms, args.replies // 5)), {})


def report(store: str, figures: dict[str, float], unbatched: dict[str, float]) -> None:
    last = "one unbatched statement ms" if unbatched else "longest script call ms (Redis held)"
    print(f"\n| {store} pass | rows removed | wall s | CPU s | longest loop stall ms: wall / CPU | loop turns "
          f"| {last} |\n|---|---:|---:|---:|---:|---:|---:|")
    for name in ("retention", "expiry"):
        one = unbatched.get(f"{name}_one_statement_ms", figures.get(f"{name}_longest_script_ms"))
        print(f"| {name} | {figures[f'{name}_rows']:,.0f} | {figures[f'{name}_s']:.2f} | "
              f"{figures[f'{name}_cpu_s']:.2f} | {figures[f'{name}_longest_ms']:.1f} / "
              f"{figures[f'{name}_longest_cpu_ms']:.1f} | "
              f"{figures[f'{name}_turns']:,.0f} | {'–' if one is None else f'{one:,.1f}'} |")


if __name__ == "__main__":
    main()
