"""What the server keeps per room stays bounded when one client walks through many rooms.

A real server, one real client that joins a room, gets a message sent to it
live, and leaves, for 20,000 distinct rooms (a window of them at a time, well
under the per-connection room limit). Every per-room structure of the server
is measured afterwards, and the memory Python holds (``tracemalloc``, traced
from the start) must not grow between room 5,000 and room 20,000. About 50
seconds here, a minute and a half with tracemalloc on a loaded machine. Then a room seen early, long evicted, comes back with its log.
"""

import asyncio
import os
import gc
import tracemalloc
from collections import Counter

from shotx.server.redis_store import RedisStore

ROOMS, WINDOW, WARM = int(os.environ.get("SHOTX_ROOM_WALK", 20_000)), 25, 5_000


async def walk(sio, sx, rooms):
    """Join, receive one room message live, leave: ``WINDOW`` rooms at a time."""
    async def one(room):
        join = await sio.call("message", {"meta": {"type": "sx_join"}, "data": {"room": room}}, timeout=30)
        assert join["meta"]["success"], join
        await sx.to(room).send("note", {"room": room})
        left = await sio.call("message", {"meta": {"type": "sx_leave"}, "data": {"room": room}}, timeout=30)
        assert left["meta"]["success"], left
    for start in range(0, len(rooms), WINDOW):
        await asyncio.gather(*(one(room) for room in rooms[start:start + WINDOW]))


def per_room_sizes(sx):
    store = sx.store
    return {"store bounds cached": getattr(store, "cached_rooms", 0),
            "store epochs being written": len(getattr(store, "_new_epochs", ())),
            "room locks": sx.room_locks.held, "delivery turns": sx.delivery_order.busy,
            "start turns": sx.start_order.busy,
            "socket.io rooms": len(sx.sio.manager.rooms.get("/", {})),
            "shared delivery rooms": sx.shared.rooms_kept if sx.shared is not None else 0}


async def test_twenty_thousand_rooms_joined_and_left_leave_bounded_state(start_server, raw_client, tmp_path):
    server = await start_server(store=str(tmp_path / "rooms.sqlite3"))
    sx, got = server.sx, Counter()  # a count, not a list of names: this test's own memory must not grow
    sio = await raw_client(server.url)
    sio.on("message", lambda message: got.update(["walk-3" if message["data"]["room"] == "walk-3" else "any"]))
    rooms = [f"walk-{n}" for n in range(ROOMS)]
    tracemalloc.start()  # from the start: what the caches free after room WARM counts against their growth
    try:
        await walk(sio, sx, rooms[:WARM])
        gc.collect()
        before = tracemalloc.take_snapshot()
        await walk(sio, sx, rooms[WARM:])
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = after.compare_to(before, "lineno")
    grown = sum(stat.size_diff for stat in growth)
    print(f"room walk: {ROOMS:,} rooms, Python memory grew by {grown:,} bytes over the last {ROOMS - WARM:,}")
    # 15,000 more rooms seen: without eviction the caches alone grew by several MB
    assert grown < 1_000_000, f"Python memory grew by {grown:,} bytes over {ROOMS - WARM:,} rooms: " + "; ".join(
        map(str, growth[:8]))
    sizes = per_room_sizes(sx)
    assert sizes["store bounds cached"] <= sx.store.room_cache < ROOMS, sizes
    assert sizes["store epochs being written"] <= 2 * WINDOW, sizes  # only the last loop turns'
    assert {key: value for key, value in sizes.items() if not key.startswith("store")} == {
        "room locks": 0, "delivery turns": 0, "start turns": 0, "socket.io rooms": 2,  # the namespace's and the socket's own
        "shared delivery rooms": 0}, sizes
    assert got == {"walk-3": 1, "any": ROOMS - 1}  # every room's message arrived live, once
    again = await sio.call("message", {"meta": {"type": "sx_join"}, "data": {"room": "walk-3", "since": 0}})
    assert (again["data"]["head"], again["data"]["replayed"]) == (1, 1)  # read back from the store


async def test_shared_delivery_forgets_rooms_left_and_rooms_of_a_gone_socket(
        redis_prefix, redis_url, start_server, raw_client, wait_until):
    server = await start_server(store=RedisStore(redis_url, prefix=redis_prefix))
    sx, got = server.sx, []
    sio = await raw_client(server.url)
    sio.on("message", lambda message: got.append(message["data"]["room"]))
    rooms = [f"shared-{n}" for n in range(300)]
    await walk(sio, sx, rooms)
    await wait_until(lambda: len(got) == len(rooms))
    assert per_room_sizes(sx)["shared delivery rooms"] == 0
    for room in rooms[:50]:  # joined, with a message delivered, then the socket goes away
        await sio.call("message", {"meta": {"type": "sx_join"}, "data": {"room": room}})
        await sx.to(room).send("note", {"room": room})
    await wait_until(lambda: len(got) == len(rooms) + 50)
    assert per_room_sizes(sx)["shared delivery rooms"] == 50
    await sio.disconnect()
    await wait_until(lambda: per_room_sizes(sx)["shared delivery rooms"] == 0)
