"""Room messages to flapping members while a cutting proxy and SIGKILLs hit the SQLite server.

Promise under test (README, "Delivery guarantees", and issue 8): every room
message published after a member's first join reaches it, in log order,
none missing, none handled twice (a repeat is allowed only as the stated
at-least-once window: a recreated client handling again the message its
predecessor handled last), whatever the member went through: cuts, stalls,
a server kill, disconnects, joining and dropping before its first message,
being closed and recreated from its SQLite store.
"""

from __future__ import annotations

import time

from shotx.server import SqliteStore

from fault_ledger import digest
from fault_rooms import ROOM, SETTLE, RoomRun, room_schedule, tally_room
from proxy import FaultProxy


async def read_log(store) -> dict[int, str]:
    """The room's log as the server stored it: offset -> message id."""
    await store.open()
    try:
        entries = await store.read(ROOM, 0, 1_000_000)
    finally:
        await store.close()
    return {entry.offset: entry.id for entry in entries}


def room_figures(run, log, settled, proxy, seed, schedule, seconds, **extra):
    head = max(log, default=0)
    total, by_member = tally_room(run.members, log)
    parts = dict(sends=0, room_messages=len(run.published), members=len(run.members), cuts=proxy.counts.cuts,
                 kills=run.kills, **total, head=head, settled=settled, joindrops=run.joindrops,
                 recreated=run.recreated, stalls=proxy.counts.stalls, publish_errors=run.publish_errors,
                 member_errors=run.member_errors, connections_cut=proxy.counts.connections_cut, **extra,
                 seconds=round(seconds, 1), seed=seed, schedule=digest(schedule))
    return "faults: " + " ".join(f"{k}={v}" for k, v in parts.items()), total, by_member


def assert_rooms(total, by_member, run, log, settled):
    assert len(log) >= len(run.published), "the log holds fewer messages than were acknowledged"
    published = {entry["offset"]: entry["id"] for entry in run.published}
    assert all(log.get(offset) == message_id for offset, message_id in published.items()), \
        "an acknowledged publish is not in the log under its offset"
    assert total["lost"] == 0, f"room messages lost, per member: {by_member}"
    assert total["twice"] == 0, f"room messages handled twice, per member: {by_member}"
    assert total["out_of_order"] == 0, f"room messages out of order, per member: {by_member}"
    assert total["wrong_id"] == 0, f"handled ids that are not the log's at their offset: {by_member}"
    assert settled, f"a member had not handled the head {SETTLE} s after the last publish (late or stuck)"


async def test_room_messages_reach_flapping_members_in_order_once(tmp_path, servers, rng, seed, soak, figures,
                                                                   client_log):
    total, cuts, kills = (10_000, 50, 3) if soak else (2_000, 20, 1)
    schedule = room_schedule(rng, total, cuts, kills)
    store_path = tmp_path / "server.sqlite3"
    server = servers(str(store_path))
    await server.start()
    proxy = await FaultProxy.start([("127.0.0.1", server.port)], rng.randrange(2**31))
    run = RoomRun(tmp_path, proxy, [server], total)
    started = time.monotonic()
    settled = False
    try:
        await run.run(schedule)
        head = max((entry["offset"] for entry in run.published), default=0)
        settled = await run.settle(head, SETTLE)
    finally:
        await run.close()
        await proxy.close()
        await server.stop()
    log = await read_log(SqliteStore(store_path))
    line, total_counts, by_member = room_figures(run, log, settled, proxy, seed, schedule,
                                                 time.monotonic() - started, **client_log())
    figures(line)
    assert proxy.counts.connections_cut > 0 and run.kills == kills, "the faults did not happen"
    assert_rooms(total_counts, by_member, run, log, settled)
