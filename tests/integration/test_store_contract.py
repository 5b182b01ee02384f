"""Every server store keeps the same promises; SQLite also across reopen.

The contract also runs on the memory and SQLite stores wrapped so that every
call yields to the event loop first, as a store doing real I/O does: a caller
that checks, awaits and then acts finds out here, not only on Redis.
"""

import asyncio
import inspect
import json

import pytest

from shotx.server import MemoryStore, SqliteStore


class YieldingStore:
    """A real store whose every async method first lets other tasks run."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        found = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(found):
            return found

        async def yielding(*args, **kwargs):
            await asyncio.sleep(0)
            return await found(*args, **kwargs)
        return yielding


@pytest.fixture(params=["memory", "sqlite", "redis", "memory-yielding", "sqlite-yielding"])
async def store(request, tmp_path):
    kind = request.param.removesuffix("-yielding")
    if kind == "redis":
        from shotx.server.redis_store import RedisStore

        made = RedisStore(request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix"))
    else:
        made = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.sqlite3")
    await made.open()
    yield YieldingStore(made) if request.param.endswith("-yielding") else made
    await made.close()


async def test_append_assigns_offsets_per_room_and_reads_in_order(store):
    for n in range(3):
        assert (await store.append("a", "t", json.dumps({"n": n}), f"a{n}", 100.0 + n, False, 10)).offset == n + 1
    assert (await store.append("b", "t", json.dumps("x"), "b0", 1.0, True, 10)).offset == 1
    entries = await store.read("a", 0, 100)
    assert [(e.offset, e.id, e.data) for e in entries] == [(1, "a0", {"n": 0}), (2, "a1", {"n": 1}), (3, "a2", {"n": 2})]
    assert [e.offset for e in await store.read("a", 1, 1)] == [2]
    assert await store.read("a", 3, 10) == [] and await store.read("none", 0, 10) == []


async def test_appends_are_read_at_once_and_durable_once_flushed(store):
    entry = await store.append("r", "t", json.dumps({"n": 1}), "1", 1.0, False, 10)
    entry2 = await store.append("r", "t", json.dumps({"n": 2}), "2", 1.0, False, 10)
    assert [e.id for e in await store.read("r", 0, 10)] == ["1", "2"] and (entry.offset, entry2.offset) == (1, 2)
    await store.flushed(entry)  # this append's own outcome
    await store.flushed()
    store = getattr(store, "inner", store)  # a YieldingStore's own
    if isinstance(store, SqliteStore):  # committed: no write of the group is left open or pending
        assert not store.db.in_transaction and not store.commits.pending
    await store.flushed()  # nothing pending: returns at once


async def test_concurrent_appends_get_consecutive_offsets_and_a_new_room_one_epoch(store):
    looks = await asyncio.gather(*(store.bounds("c") for _ in range(5)))
    assert len({bounds.epoch for bounds in looks}) == 1
    entries = await asyncio.gather(*(store.append("c", "t", str(n), f"c{n}", 1.0, n % 2 == 0, 100)
                                     for n in range(20)))
    assert sorted(entry.offset for entry in entries) == list(range(1, 21))
    await asyncio.gather(*(store.flushed(entry) for entry in entries))
    in_order = sorted(entries, key=lambda entry: entry.offset)
    assert [e.id for e in await store.read("c", 0, 100)] == [entry.id for entry in in_order]
    bounds = await store.bounds("c")
    assert (bounds.head, bounds.epoch) == (20, looks[0].epoch)
    assert bounds.delivered == max(entry.offset for entry in entries if int(entry.id[1:]) % 2 == 0)


async def test_bounds_track_head_floor_and_delivered(store):
    assert (await store.bounds("r")).head == 0
    await store.append("r", "t", json.dumps(1), "1", 1.0, False, 10)
    await store.append("r", "t", json.dumps(2), "2", 1.0, True, 10)
    await store.append("r", "t", json.dumps(3), "3", 1.0, False, 10)
    bounds = await store.bounds("r")
    assert (bounds.head, bounds.floor, bounds.delivered) == (3, 0, 2)
    await store.mark_delivered("r", 3)
    await store.mark_delivered("r", 1)  # never backwards
    assert (await store.bounds("r")).delivered == 3


async def test_retention_by_count_keeps_the_newest(store):
    for n in range(1, 8):
        await store.append("r", "t", json.dumps(n), str(n), 1.0, False, 3)
    assert [e.offset for e in await store.read("r", 0, 100)] == [5, 6, 7]
    assert (await store.bounds("r")).floor == 4


async def test_retention_by_age_moves_the_floor(store):
    for n in range(1, 6):
        await store.append("r", "t", json.dumps(n), str(n), float(n), False, 100)
    assert await store.drop_older_than(3.5) == 3
    assert [e.offset for e in await store.read("r", 0, 100)] == [4, 5]
    bounds = await store.bounds("r")
    assert (bounds.head, bounds.floor) == (5, 3)
    assert (await store.append("r", "t", json.dumps(6), "6", 9.0, False, 100)).offset == 6


async def test_replies_are_remembered_per_principal_and_forgotten_by_age(store):
    reply = {"meta": {"success": True}, "data": {"x": [1, 2]}}
    await store.remember("alice", "m1", json.dumps(reply), 10.0)
    assert await store.recall("alice", "m1") == json.dumps(reply)  # the very text it was given
    assert await store.recall("bob", "m1") is None
    assert await store.forget_replies_before(11.0) == 1
    assert await store.recall("alice", "m1") is None


async def test_a_store_untimed_for_settling_on_the_loop_settles_within_a_few_turns(store):
    """ReplyMemory puts no ``store_timeout`` timer around the calls of a store that says
    ``settles_on_the_loop`` (store.py): each call must then end within a few turns of the loop,
    with nothing else to wait for. Redis, which waits for its server, must not say it."""
    from shotx.server.redis_store import RedisStore

    inner = getattr(store, "inner", store)
    claims = getattr(store, "settles_on_the_loop", False)
    assert claims is (not isinstance(inner, RedisStore)), type(inner).__name__
    if not claims:
        return
    turns, calls_done = 0, False

    async def count_turns() -> None:
        nonlocal turns
        while not calls_done:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    await store.remember("alice", "m1", "{}", 10.0)
    assert await store.recall("alice", "m1") == "{}"
    entry = await store.append("r", "t", "{}", "i1", 10.0, False, 100)
    await store.flushed(entry)
    calls_done = True
    await counter
    assert turns <= 12, f"{turns} loop turns for four calls: the store waits for something"


async def test_sqlite_survives_reopen(tmp_path):
    path = tmp_path / "again.sqlite3"
    first = SqliteStore(path)
    await first.open()
    for n in range(1, 4):
        await first.append("r", "t", json.dumps({"n": n}), str(n), 1.0, n == 1, 10)
    await first.remember("p", "id", json.dumps({"meta": {"success": True}, "data": 1}), 5.0)
    await first.close()
    second = SqliteStore(path)
    await second.open()
    try:
        bounds = await second.bounds("r")
        assert (bounds.head, bounds.delivered) == (3, 1)
        assert [e.data["n"] for e in await second.read("r", 0, 10)] == [1, 2, 3]
        assert (await second.append("r", "t", json.dumps({"n": 4}), "4", 1.0, False, 10)).offset == 4
        assert json.loads(await second.recall("p", "id")) == {"meta": {"success": True}, "data": 1}
    finally:
        await second.close()


async def reopened(path):
    store = SqliteStore(path)
    await store.open()
    return store


async def test_sqlite_bounds_after_reopen_follow_the_log(tmp_path):
    """Appends write no ``rooms`` row: head, floor and the live mark come back from the log."""
    path = tmp_path / "bounds.sqlite3"
    first = await reopened(path)
    for n in range(1, 8):
        await first.append("count", "t", json.dumps(n), str(n), 50.0, n in (2, 5), 3)
    for n in range(1, 4):
        await first.append("age", "t", json.dumps(n), f"a{n}", float(n), n == 1, 100)
    assert await first.drop_older_than(10.0) == 3  # the whole "age" log goes
    await first.append("marked", "t", "1", "m1", 1.0, False, 100)
    await first.append("marked", "t", "2", "m2", 1.0, False, 100)
    await first.mark_delivered("marked", 2)
    expected = {name: await first.bounds(name) for name in ("count", "age", "marked")}
    await first.close()
    second = await reopened(path)
    try:
        assert {name: await second.bounds(name) for name in expected} == expected
        assert [(b.head, b.floor, b.delivered) for b in expected.values()] == [(7, 4, 5), (3, 3, 1), (2, 0, 2)]
        assert (await second.append("age", "t", "4", "a4", 20.0, False, 100)).offset == 4
        assert [e.offset for e in await second.read("count", 0, 10)] == [5, 6, 7]
    finally:
        await second.close()


async def test_sqlite_opens_a_version_1_file(tmp_path):
    """A file written before the ``live`` column keeps its rooms and messages."""
    import sqlite3

    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE room_log (room TEXT NOT NULL, offset INTEGER NOT NULL, id TEXT NOT NULL,
            type TEXT NOT NULL, data TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (room, offset)) WITHOUT ROWID;
        CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL, floor INTEGER NOT NULL,
            delivered INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE replies (principal TEXT NOT NULL, id TEXT NOT NULL, reply TEXT NOT NULL, ts REAL NOT NULL,
            PRIMARY KEY (principal, id)) WITHOUT ROWID;
        INSERT INTO room_log VALUES ('r', 2, 'b', 't', '{"n":2}', 1.0), ('r', 3, 'c', 't', '{"n":3}', 1.0);
        INSERT INTO rooms VALUES ('r', 3, 1, 2);
    """)
    db.close()
    store = await reopened(path)
    try:
        bounds = await store.bounds("r")
        assert (bounds.head, bounds.floor, bounds.delivered) == (3, 1, 2) and bounds.epoch
        assert [e.data for e in await store.read("r", 0, 10)] == [{"n": 2}, {"n": 3}]
        assert (await store.append("r", "t", "4", "d", 1.0, True, 10)).offset == 4
    finally:
        await store.close()
    again = await reopened(path)
    try:
        assert (await again.bounds("r")).delivered == 4
        assert (await again.bounds("r")).epoch == bounds.epoch
    finally:
        await again.close()


async def test_sqlite_refuses_a_file_from_a_newer_shotx(tmp_path):
    import sqlite3

    path = tmp_path / "future.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(RuntimeError, match="schema version 99"):
        await SqliteStore(path).open()


async def test_a_second_sqlite_store_on_one_file_is_refused_clearly(tmp_path):
    """Two servers on one file would hand out the same offsets: the second fails at open."""
    path = tmp_path / "owned.sqlite3"
    owner = await reopened(path)
    try:
        await owner.append("r", "t", "1", "1", 1.0, False, 10)
        with pytest.raises(RuntimeError, match="in use by another SqliteStore"):
            await SqliteStore(path).open()
        assert (await owner.append("r", "t", "2", "2", 1.0, False, 10)).offset == 2
    finally:
        await owner.close()
    again = await reopened(path)  # closing releases the file
    try:
        assert (await again.bounds("r")).head == 2
    finally:
        await again.close()


async def test_sqlite_a_failed_write_fails_its_own_writer_only_and_never_a_reader(tmp_path, caplog):
    """Defect 6: writes made in one loop turn commit together, and a read in that turn runs
    them early (read your writes). One that fails (here a row written behind the store's back
    takes offset 3, and an id no UTF-8 can encode) fails its own writer: not the reader, not
    the other writers of the group, and nothing is claimed that is not in the file."""
    import asyncio
    import sqlite3

    path = tmp_path / "fail.sqlite3"
    store = await reopened(path)
    try:
        await store.append("r", "t", "1", "1", 1.0, False, 10)
        await store.flushed()
        store.db.execute("INSERT INTO room_log (room, offset, id, type, data, ts) VALUES ('r', 3, 'x', 't', '0', 1.0)")
        # started first, so that its write joins the appends' group when it runs
        remembering = asyncio.ensure_future(store.remember("p", "m", '"reply"', 1.0))
        entries = [await store.append(room, "t", "0", message_id, 1.0, False, 10)  # no await yields: one group
                   for room, message_id in (("r", "2"), ("r", "3"), ("other", "4"), ("other", "\ud800"))]
        assert [e.id for e in await store.read("r", 0, 10)] == ["1", "2", "x"]  # the reader is not hurt
        assert [e.id for e in await store.read("other", 0, 10)] == ["4"]
        outcomes = await asyncio.gather(*(store.flushed(entry) for entry in entries), return_exceptions=True)
        await remembering  # its own write succeeded: the appends' failures are not its
        assert [type(outcome) for outcome in outcomes] == [
            type(None), sqlite3.IntegrityError, type(None), UnicodeEncodeError]
        with pytest.raises(sqlite3.IntegrityError):
            await store.flushed(entries[1])  # later, too: a failed entry stays failed
        await store.append("other", "t", "0", "\udfff", 1.0, False, 10)
        with pytest.raises(UnicodeEncodeError):  # without an entry: raises if an append it waited for failed
            await store.flushed()
        assert sum("SQLite" in r.getMessage() for r in caplog.records if r.levelname == "ERROR") >= 2
        assert (await store.append("r", "t", "5", "5", 1.0, False, 10)).offset == 4
        assert (await store.append("other", "t", "6", "6", 1.0, False, 10)).offset == 2  # 2 handed out again
        await store.flushed()
        expected = {"r": [(1, "1"), (2, "2"), (3, "x"), (4, "5")], "other": [(1, "4"), (2, "6")]}
        assert {room: [(e.offset, e.id) for e in await store.read(room, 0, 10)] for room in expected} == expected
    finally:
        await store.close()
    again = await reopened(path)
    try:
        assert {room: [(e.offset, e.id) for e in await again.read(room, 0, 10)] for room in expected} == expected
        assert await again.recall("p", "m") == '"reply"'
    finally:
        await again.close()


async def test_sqlite_a_reply_committed_beside_a_failed_append_is_remembered(tmp_path, caplog):
    """``remember`` reports its own write: an unrelated append that failed in the same
    commit no longer made ReplyMemory log a false "could not be remembered durably"
    (it awaited ``flushed()``, which raises whichever append of the group failed)."""
    from shotx.client import protocol
    from shotx.server.replies import ReplyMemory

    path = tmp_path / "beside.sqlite3"
    store = await reopened(path)
    try:
        await store.append("r", "t", "1", "1", 1.0, False, 10)
        await store.flushed()
        store.db.execute("INSERT INTO room_log (room, offset, id, type, data, ts) VALUES ('r', 2, 'x', 't', '0', 1.0)")
        failing = await store.append("r", "t", "0", "2", 1.0, False, 10)  # offset 2 is taken: fails at commit
        reply = protocol.encode_json(protocol.success("done"))

        async def run() -> str:
            return reply

        assert await ReplyMemory(store).once("p", "m1", run, resent=False) == reply  # one group with the append
        with pytest.raises(Exception):
            await store.flushed(failing)
        assert "could not be remembered" not in caplog.text
    finally:
        await store.close()
    again = await reopened(path)
    try:
        assert await again.recall("p", "m1") == reply
    finally:
        await again.close()


async def test_sqlite_a_group_none_of_whose_writes_can_be_made_fails_every_writer(tmp_path):
    """No write of the group is made (the connection refuses them all): every writer,
    the awaited ``mark_delivered`` too, hears so, and the store goes on from the file."""
    import asyncio
    import sqlite3

    path = tmp_path / "whole.sqlite3"
    store = await reopened(path)
    try:
        await store.append("r", "t", "1", "1", 1.0, False, 10)
        await store.flushed()
        store.db.execute("PRAGMA query_only = ON")  # every write of the next group is refused
        entries = [await store.append("r", "t", str(n), str(n), 1.0, False, 10) for n in (2, 3)]
        marking = asyncio.ensure_future(store.mark_delivered("r", 3))
        outcomes = await asyncio.gather(*(store.flushed(e) for e in entries), marking, return_exceptions=True)
        assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes), outcomes
        store.db.execute("PRAGMA query_only = OFF")
        assert [e.id for e in await store.read("r", 0, 10)] == ["1"]
        assert (await store.bounds("r")).head == 1
        entry = await store.append("r", "t", "2", "2b", 1.0, False, 10)
        await store.flushed(entry)
        assert entry.offset == 2
    finally:
        await store.close()


async def test_sqlite_retention_by_count_sweeps_in_batches_and_reads_never_see_below_the_floor(tmp_path):
    from shotx.server.sqlite_store import RETENTION_SWEEP

    path = tmp_path / "sweep.sqlite3"
    store = await reopened(path)
    total = 3 * RETENTION_SWEEP + 7
    for n in range(1, total + 1):
        await store.append("r", "t", json.dumps(n), str(n), 1.0, False, 10)
    await store.flushed()
    rows = store.db.execute("SELECT COUNT(*) FROM room_log WHERE room = 'r'").fetchone()[0]
    assert 10 <= rows < 10 + RETENTION_SWEEP  # swept a batch at a time, never more than the slack
    assert [e.offset for e in await store.read("r", 0, 100)] == list(range(total - 9, total + 1))
    assert (await store.bounds("r")).floor == total - 10
    await store.close()  # a clean shutdown sweeps the rest
    again = await reopened(path)
    try:
        assert again.db.execute("SELECT COUNT(*) FROM room_log WHERE room = 'r'").fetchone()[0] == 10
        assert (await again.bounds("r")).floor == total - 10
    finally:
        await again.close()


# ---- epochs: the identity of a room's history ---------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
def storage(request, tmp_path):
    """``storage(name)`` makes an unopened store on storage ``name``: the same name is the same
    SQLite file or Redis prefix (a memory store has nothing to share, so every call is new)."""
    if request.param == "redis":
        from shotx.server.redis_store import RedisStore

        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        return lambda name: RedisStore(url, prefix=f"{prefix}:{name}")
    if request.param == "sqlite":
        return lambda name: SqliteStore(tmp_path / f"{name}.sqlite3")
    return lambda name: MemoryStore()


async def opened(store):
    await store.open()
    return store


async def test_every_room_has_an_epoch_that_appends_and_retention_keep(store):
    fresh = (await store.bounds("r")).epoch  # a room never written has one already
    assert isinstance(fresh, str) and len(fresh) >= 8
    assert (await store.bounds("r")).epoch == fresh
    await store.append("r", "t", "1", "1", 1.0, False, 2)  # the first append keeps it
    await store.flushed()
    for n in range(2, 5):
        await store.append("r", "t", str(n), str(n), float(n), n == 3, 2)
    await store.mark_delivered("r", 4)
    await store.drop_older_than(4.0)
    await store.flushed()
    bounds = await store.bounds("r")
    assert (bounds.head, bounds.floor, bounds.delivered, bounds.epoch) == (4, 3, 4, fresh)
    await store.append("s", "t", "1", "1", 1.0, False, 10)  # first seen by an append
    assert (await store.bounds("s")).epoch not in ("", fresh)


async def test_an_epoch_survives_reopening_the_same_storage_and_is_new_on_fresh_storage(storage):
    first = await opened(storage("a"))
    try:
        written, unwritten = (await first.bounds("r")).epoch, (await first.bounds("empty")).epoch
        await first.append("r", "t", "1", "1", 1.0, False, 10)
        await first.flushed()
    finally:
        await first.close()
    again, fresh = await opened(storage("a")), await opened(storage("b"))
    try:
        if not isinstance(again, MemoryStore):  # same file or prefix: same histories
            assert (await again.bounds("r")).epoch == written
            assert (await again.bounds("empty")).epoch == unwritten
        assert (await fresh.bounds("r")).epoch not in ("", written)  # other storage: another history
        assert (await fresh.bounds("r")).epoch == (await fresh.bounds("r")).epoch
    finally:
        await again.close()
        await fresh.close()


async def test_a_memory_store_has_new_histories_each_time():
    assert (await MemoryStore().bounds("r")).epoch != (await MemoryStore().bounds("r")).epoch


async def test_two_redis_stores_on_one_prefix_see_one_epoch(redis_url, redis_prefix):
    import asyncio

    from shotx.server.redis_store import RedisStore

    one, two = (RedisStore(redis_url, prefix=redis_prefix) for _ in range(2))
    await one.open()
    await two.open()
    try:
        first = await asyncio.gather(one.bounds("seen"), two.bounds("seen"))  # both look first
        assert first[0].epoch == first[1].epoch != ""
        appended = await asyncio.gather(one.append("sent", "t", "1", "1", 1.0, False, 10),
                                        two.append("sent", "t", "2", "2", 1.0, False, 10))
        assert sorted(entry.offset for entry in appended) == [1, 2]
        assert (await one.bounds("sent")).epoch == (await two.bounds("sent")).epoch != first[0].epoch
    finally:
        await one.close()
        await two.close()


async def test_sqlite_writes_a_rooms_epoch_once_not_per_append(tmp_path):
    store = await opened(SqliteStore(tmp_path / "once.sqlite3"))
    try:
        await store.append("r", "t", "1", "1", 1.0, False, 10)
        await store.flushed()
        changes = store.db.total_changes
        for n in range(2, 12):
            await store.append("r", "t", str(n), str(n), 1.0, False, 100)
        await store.flushed()
        assert store.db.total_changes - changes == 10  # one row per append, no rooms row
        assert store.db.execute("SELECT COUNT(*) FROM rooms WHERE epoch IS NOT NULL").fetchone()[0] == 1
    finally:
        await store.close()


async def test_sqlite_gives_the_rooms_of_a_version_2_file_stable_epochs(tmp_path):
    """A version 2 file has no epochs and rooms with no ``rooms`` row: each room gets one
    at the upgrade, the same at every later open."""
    import sqlite3

    path = tmp_path / "v2.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE room_log (room TEXT NOT NULL, offset INTEGER NOT NULL, id TEXT NOT NULL,
            type TEXT NOT NULL, data TEXT NOT NULL, ts REAL NOT NULL, live INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (room, offset)) WITHOUT ROWID;
        CREATE TABLE rooms (room TEXT PRIMARY KEY, head INTEGER NOT NULL, floor INTEGER NOT NULL,
            delivered INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE replies (principal TEXT NOT NULL, id TEXT NOT NULL, reply TEXT NOT NULL, ts REAL NOT NULL,
            PRIMARY KEY (principal, id)) WITHOUT ROWID;
        INSERT INTO room_log VALUES ('logged', 1, 'a', 't', '1', 1.0, 1), ('logged', 2, 'b', 't', '2', 1.0, 0);
        INSERT INTO rooms VALUES ('emptied', 5, 5, 5);
        PRAGMA user_version = 2;
    """)
    db.close()
    first = await opened(SqliteStore(path))
    try:
        assert first.db.execute("PRAGMA user_version").fetchone()[0] == 4  # upgraded to the current version
        bounds = {room: await first.bounds(room) for room in ("logged", "emptied")}
        assert [(b.head, b.floor, b.delivered) for b in bounds.values()] == [(2, 0, 1), (5, 5, 5)]
        assert bounds["logged"].epoch and bounds["emptied"].epoch and bounds["logged"].epoch != bounds["emptied"].epoch
    finally:
        await first.close()
    again = await opened(SqliteStore(path))
    try:
        assert {room: await again.bounds(room) for room in bounds} == bounds
    finally:
        await again.close()
