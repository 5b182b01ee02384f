"""A join's replay of many pages: read a page at a time, each once the client has taken the
last, sent in offset order after the answer and before the live messages that follow, without
holding the room's sends; whole over either WebSocket path; a read that fails mid-way costs
the connection, not the rest of the replay.

``REPLAY_PAGE`` (500) is the replay page size of issue 9's limits. The replay used to be
read whole before anything was sent. The store here is a real SQLite store
whose reads after the first page can be held, so the test sees what the server sent
before it read on.
"""

from __future__ import annotations

import asyncio

from shotx.server import SqliteStore
from shotx.server.server import REPLAY_PAGE

TOTAL = 2 * REPLAY_PAGE + 234


class HeldReads(SqliteStore):
    """A real SQLite store; once ``hold`` is set, the read of a replay's second page waits for ``release``."""

    def __init__(self, path) -> None:  # type: ignore[no-untyped-def]
        super().__init__(path)
        self.hold, self.release, self.held = False, asyncio.Event(), asyncio.Event()
        self.reads: list[int] = []  # the ``after`` of each read
        self.retention_asked, self.dropped_at = asyncio.Event(), None  # type: ignore[var-annotated]

    async def read(self, room, after, limit):  # type: ignore[no-untyped-def]
        self.reads.append(after)
        if self.hold and after == REPLAY_PAGE:  # the joining member's second page
            self.held.set()
            await self.release.wait()
        return await super().read(room, after, limit)

    async def forget_replies_before(self, ts):  # type: ignore[no-untyped-def]
        self.retention_asked.set()  # apply_retention's first step; the drop comes after it
        return await super().forget_replies_before(ts)

    async def drop_older_than(self, ts):  # type: ignore[no-untyped-def]
        self.dropped_at = len(self.reads)
        return await super().drop_older_than(ts)


def pause_reading(client) -> asyncio.Transport:  # type: ignore[no-untyped-def]
    """The client's socket stops reading (aiohttp's connection under python-engineio's WebSocket)."""
    transport = client.transport._sio.eio.ws._conn.transport
    transport.pause_reading()
    return transport


async def a_room_of(server, room: str, count: int) -> None:
    for n in range(1, count + 1):
        await server.sx.to(room).send("n", {"n": n})


async def joining_with_the_second_read_held(start_server, make_client, tmp_path):  # type: ignore[no-untyped-def]
    """A server on :class:`HeldReads` with a room of ``TOTAL``, and a client whose join of it
    waits at the replay's second read: ``(server, store, joining, offsets handled)``."""
    store = HeldReads(tmp_path / "server.sqlite3")
    server = await start_server(store=store)
    await a_room_of(server, "r", TOTAL)
    client, got = make_client(server.url), []
    client.on_message("n", lambda data, meta: got.append(meta["offset"]))
    await client.connect("t")
    store.hold, store.reads = True, []
    joining = asyncio.ensure_future(client.join("r"))
    await store.held.wait()  # the second page's read: the first page is on its way, and only it
    return server, store, joining, got


async def test_a_replay_of_several_pages_is_sent_page_by_page_in_order_after_the_answer(
        start_server, make_client, wait_until, tmp_path):
    server, store, joining, got = await joining_with_the_second_read_held(start_server, make_client, tmp_path)
    await wait_until(lambda: len(got) == REPLAY_PAGE)
    assert got == list(range(1, REPLAY_PAGE + 1))
    store.release.set()
    answer = await asyncio.wait_for(joining, 10)  # join() returns once the whole replay is handled
    assert (answer["replayed"], answer["until"]) == (TOTAL, TOTAL)
    assert got == list(range(1, TOTAL + 1))
    # the short last page is read again under the room's lock, with whatever was sent meanwhile
    assert store.reads == [0, REPLAY_PAGE, 2 * REPLAY_PAGE, 2 * REPLAY_PAGE]


async def test_sends_during_a_long_replay_go_on_and_reach_the_member_after_it_in_order(
        start_server, make_client, wait_until, tmp_path):
    """A long replay does not hold the room: sends made while it waits go out to the other
    members at once, and reach the joining member from the log, after what came before."""
    import socketio  # type: ignore[import-untyped]

    server, store, joining, got = await joining_with_the_second_read_held(start_server, make_client, tmp_path)
    other_got: list[int] = []
    other = socketio.AsyncClient(reconnection=False)  # a member already at the head: no replay of its own
    other.on("message", lambda payload: other_got.append(payload["meta"]["offset"]))
    await other.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=["websocket"])
    try:
        await other.call("message", {"meta": {"type": "sx_join"}, "data": {"room": "r", "since": TOTAL}}, timeout=5)
        for n in range(TOTAL + 1, TOTAL + 11):
            await asyncio.wait_for(server.sx.to("r").send("n", {"n": n}), 5)  # never waits for the replay
        await wait_until(lambda: other_got == list(range(TOTAL + 1, TOTAL + 11)), 5)  # live, at once
    finally:
        await other.disconnect()
    assert got == list(range(1, REPLAY_PAGE + 1)), "a live message overtook the replay"
    store.release.set()
    await asyncio.wait_for(joining, 10)
    await wait_until(lambda: len(got) == TOTAL + 10, 10)
    assert got == list(range(1, TOTAL + 11))


class FailingRead(HeldReads):
    """A real SQLite store whose first read past the first page fails (a Redis restarting)."""

    failed = False

    async def read(self, room, after, limit):  # type: ignore[no-untyped-def]
        if after > 0 and not self.failed:
            self.failed = True
            raise ConnectionError("the log is not there for a moment")
        return await super().read(room, after, limit)


async def test_a_read_that_fails_mid_replay_costs_the_connection_not_the_rest_of_the_replay(
        start_server, make_client, tmp_path):
    """The answer promised the whole range. A failed read used to end the replay quietly: the
    member stayed in the room with a hole after the first page, and a live message past it
    would have moved its offset over the hole for good."""
    store = FailingRead(tmp_path / "server.sqlite3")
    server = await start_server(store=store)
    await a_room_of(server, "r", TOTAL)
    client, got = make_client(server.url, store=tmp_path / "client.sqlite3"), []
    client.on_message("n", lambda data, meta: got.append(meta["offset"]))
    await client.connect("t")
    await asyncio.wait_for(client.join("r"), 20)  # returns once it has handled up to the promised head
    assert store.failed and got == list(range(1, TOTAL + 1))  # the rejoin took it from where it got to


async def test_a_replay_of_several_pages_over_a_compressed_websocket_arrives_whole(start_server, tmp_path):
    """Browsers and socket.io-client offer permessage-deflate, which the server accepts with
    ``websocket_compression=True``: such a socket takes engine.io's writer, not the direct
    path. (A wait between pages that looked for the direct path's state once stopped these
    replays at the first page, taking the socket for gone.)"""
    import socketio  # type: ignore[import-untyped]

    server = await start_server(store=tmp_path / "server.sqlite3", websocket_compression=True)
    await a_room_of(server, "r", TOTAL)
    got: list[int] = []
    done = asyncio.Event()

    def message(payload):  # type: ignore[no-untyped-def]
        got.append(payload["meta"]["offset"])
        if len(got) == TOTAL:
            done.set()

    sio = socketio.AsyncClient(reconnection=False, websocket_extra_options={"compress": 15})
    sio.on("message", message)
    await sio.connect(server.url, auth={"token": "t"}, socketio_path="shotx", transports=["websocket"])
    try:
        assert sio.eio.ws.compress, "the client did not get permessage-deflate"
        answer = await sio.call("message", {"meta": {"type": "sx_join"}, "data": {"room": "r", "since": 0}},
                                timeout=10)
        assert answer["data"]["replayed"] == TOTAL
        await asyncio.wait_for(done.wait(), 20)
        assert got == list(range(1, TOTAL + 1))
    finally:
        await sio.disconnect()


async def test_a_member_that_stops_reading_holds_about_a_page_of_its_replay_and_not_the_room(
        start_server, make_client, wait_until, tmp_path):
    """Between pages the replay waits until the client has taken the last one, without the
    room's lock: big messages, so that a page is more than the kernel's socket buffers take.
    The client stops reading at the replay's first message (before it, the replay waits for
    the client to answer a ping: it has not started)."""
    store = HeldReads(tmp_path / "server.sqlite3")
    server = await start_server(store=store)
    big = "x" * 40_000
    for n in range(1, TOTAL + 1):
        await server.sx.to("r").send("n", {"n": n, "pad": big})
    client, got, paused = make_client(server.url), [], []

    def handle(data, meta) -> None:  # type: ignore[no-untyped-def]
        got.append(meta["offset"])
        if not paused:
            paused.append(pause_reading(client))

    client.on_message("n", handle)
    await client.connect("t")
    store.reads = []
    joining = asyncio.ensure_future(client.join("r"))
    await wait_until(lambda: paused, 10)
    (transport,) = paused
    (socket,) = server.sx.sio.eio.sockets.values()
    await wait_until(lambda: socket._transport is not None and socket._transport.get_write_buffer_size() > 0, 10)
    await asyncio.wait_for(server.sx.to("r").send("n", {"n": TOTAL + 1}), 5)  # the room is not held
    for _ in range(50):  # the replay's turns come and go: it must not read on
        await asyncio.sleep(0)
    assert store.reads == [0], f"read on while the client read nothing: {store.reads}"
    transport.resume_reading()
    await asyncio.wait_for(joining, 30)
    await wait_until(lambda: len(got) == TOTAL + 1, 10)
    assert got == list(range(1, TOTAL + 2))


class HeldOnce(HeldReads):
    """A real SQLite store whose read after offset ``hold_at`` waits for ``release``, once."""

    hold_at = -1

    async def read(self, room, after, limit):  # type: ignore[no-untyped-def]
        if after == self.hold_at:
            self.hold_at = -1
            self.held.set()
            await self.release.wait()
        return await SqliteStore.read(self, room, after, limit)


async def test_messages_retention_drops_before_a_catching_up_member_reads_them_are_a_gap_not_a_hole(
        start_server, make_client, wait_until, tmp_path):
    """A member catching up skips the room's live messages (its replay reads them from the
    log); retention by count may drop some first. Reading on would have stepped over them
    for good, unnoticed: the member's connection is closed instead, and its rejoin's answer
    counts them as missed (``on_gap``)."""
    store = HeldOnce(tmp_path / "server.sqlite3")
    server = await start_server(store=store, retention_max_messages=50)
    await a_room_of(server, "r", 10)
    client, got, gaps = make_client(server.url), [], []
    client.on_message("n", lambda data, meta: got.append(meta["offset"]))
    client.on_gap(lambda gap: gaps.append((gap.reason, gap.missed)))
    await client.connect("t")
    store.hold_at = 10  # the catch-up's read after the replay's first (and only) page
    await asyncio.wait_for(client.join("r"), 10)
    await asyncio.wait_for(store.held.wait(), 10)
    for n in range(11, 111):  # skip the member (it is catching up); retention keeps 61..110
        await server.sx.to("r").send("n", {"n": n})
    store.release.set()
    await wait_until(lambda: len(got) == 60, 10)
    assert got == list(range(1, 11)) + list(range(61, 111))
    assert gaps == [("expired", 50)]
