"""Shared (Redis) delivery under faults: two server processes, one killed; Redis restarted under a server.

Promise under test (README, "Several server processes: Redis", "Delivery
guarantees", issue 8): sends and room messages keep the single-server
promises when clients move between processes that share a Redis; a Redis
that comes back empty (no persistence here, on purpose) is a new history of
every room, which members must get from its start, and sends keep running
once. The proxy cuts every connection while that Redis is down, so rejoins
and resends meet a store that is not there.
"""

from __future__ import annotations

import asyncio
import collections
import time

import aiohttp

from shotx.server import RedisStore

from fault_ledger import digest, tally_sends
from fault_processes import REDIS_URL, read_runs
from fault_rooms import ROOM, SETTLE, RoomRun, room_schedule, tally_room
from fault_sends import SendRun, send_schedule
from proxy import FaultProxy

WINDOW = 0.25
ROLES = ["steady", "steady", "flapper", "flapper", "joindrop", "recreated"]


async def read_log(url: str, prefix: str) -> dict[int, str]:
    store = RedisStore(url, prefix=prefix)
    await store.open()
    try:
        return {entry.offset: entry.id for entry in await store.read(ROOM, 0, 1_000_000)}
    finally:
        await store.close()


async def server_tasks(server, tmp_path) -> str:
    """The server's tasks (GET /fault/tasks), kept in a file; the most common waits, for the message."""
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/fault/tasks") as response:
        text = await response.text()
    (tmp_path / "server-tasks.txt").write_text(text)
    waits = collections.Counter(" > ".join(line.split(" > ")[-6:]) for line in text.splitlines())
    return "\nserver tasks (innermost frames, count):\n" + "\n".join(f"  {n} x {where}" for where, n in waits.most_common(12))


def line(**parts) -> str:
    return "faults: " + " ".join(f"{name}={value}" for name, value in parts.items())


def send_counts(tally) -> dict[str, int]:
    return {"lost": len(tally.lost), "twice": len(tally.twice), "twice_in_window": len(tally.twice_in_window),
            "failed_but_ran": len(tally.failed_but_ran), "out_of_order": tally.out_of_order}


def assert_all(sends, rooms, by_member, tally, finished, settled, send_run, stuck=""):
    failed = sorted({text for key, text in send_run.ledger.failed.items()
                     if send_run.ledger.sent[key] == "fault_send"})[:5]
    details = f"sends {sends} {tally.lost[:5]} twice {tally.twice[:5]} app told {failed}; rooms {rooms} {by_member}"
    assert finished, f"not every send was answered in time:\n{stuck}\n{details}"
    assert sends["lost"] == 0 and rooms["lost"] == 0, f"lost: {details}"
    assert sends["twice"] == 0 and rooms["twice"] == 0, f"twice outside the crash window: {details}"
    assert sends["failed_but_ran"] == 0, f"told failed, yet ran: {details}"
    assert sends["out_of_order"] == 0 and rooms["out_of_order"] == 0, f"out of order: {details}"
    assert rooms["wrong_id"] == 0, f"ids that are not the log's: {details}"
    assert settled, f"a member had not handled the head {SETTLE} s after the last publish (late or stuck): {details}"


async def test_two_servers_on_redis_one_killed_mid_stream(tmp_path, servers, redis_prefix, rng, seed, soak,
                                                           figures, client_log):
    total = 4_000 if soak else 600
    first, second = servers(REDIS_URL, prefix=redis_prefix), servers(REDIS_URL, prefix=redis_prefix)
    await asyncio.gather(first.start(), second.start())
    proxy = await FaultProxy.start([("127.0.0.1", first.port), ("127.0.0.1", second.port)], rng.randrange(2**31))
    rooms_schedule = room_schedule(rng, total, 8, 1, ROLES)  # the kill: the first server, restarted later
    sends_schedule = send_schedule(rng, total, 8, 0, recreations=1, clients=4)
    rooms, sends = RoomRun(tmp_path, proxy, [first, second], total, ROLES), SendRun(tmp_path, proxy, [], 4, total)
    started, settled, finished, stuck = time.monotonic(), False, False, ""
    try:
        await sends.connect_all()
        _, finished = await asyncio.gather(rooms.run(rooms_schedule), sends.run(sends_schedule, budget=90))
        stuck = "" if finished else sends.stuck_report()
        print(stuck)
        settled = await rooms.settle(max((p["offset"] for p in rooms.published), default=0), SETTLE)
        log = await read_log(REDIS_URL, redis_prefix)
    finally:
        await sends.close()
        await rooms.close()
        await proxy.close()
        await asyncio.gather(first.stop(), second.stop())
    tally = tally_sends(sends.ledger, read_runs(first.runs), first.kills + second.kills, WINDOW)
    send_figures, (room_figures, by_member) = send_counts(tally), tally_room(rooms.members, log)
    figures(line(sends=total, room_messages=len(rooms.published), cuts=proxy.counts.cuts, kills=rooms.kills,
                 lost=send_figures["lost"] + room_figures["lost"], twice=send_figures["twice"] + room_figures["twice"],
                 twice_in_window=send_figures["twice_in_window"] + room_figures["twice_in_window"],
                 out_of_order=send_figures["out_of_order"] + room_figures["out_of_order"],
                 failed_but_ran=send_figures["failed_but_ran"], send_lost=send_figures["lost"],
                 room_lost=room_figures["lost"], out_of_order_resends=tally.out_of_order_resends,
                 settled=settled, publish_errors=rooms.publish_errors, member_errors=rooms.member_errors,
                 **client_log(),
                 seconds=round(time.monotonic() - started, 1), seed=seed,
                 schedule=digest([rooms_schedule, sends_schedule])))
    assert proxy.counts.connections_cut > 0 and rooms.kills == 1, "the faults did not happen"
    assert_all(send_figures, room_figures, {**by_member, "behind": rooms.behind}, tally, finished, settled, sends,
               stuck)


async def test_redis_restarted_empty_under_a_running_server(tmp_path, servers, private_redis, rng, seed, figures,
                                                            client_log):
    total, sends_total = 400, 300
    server = servers(private_redis.url)
    await server.start()
    proxy = await FaultProxy.start([("127.0.0.1", server.port)], rng.randrange(2**31))
    roles = ["steady", "steady", "steady", "flapper", "flapper", "recreated"]
    rooms_schedule = room_schedule(rng, total, 5, 0, roles)
    sends_schedule = send_schedule(rng, sends_total, 3, 0, 0, 4)
    down_for = round(rng.uniform(0.2, 0.5), 3)  # every client resends and rejoins while Redis is down
    schedule = sorted(rooms_schedule + [[total // 2, "redis_restart", down_for]], key=lambda event: event[0])
    old_log: dict[int, str] = {}
    joined_before: set[int] = set()  # members whose first join was in the old history

    async def restart_redis(seconds: float) -> None:
        old_log.update(await read_log(private_redis.url, "shotx"))
        joined_before.update(m.index for m in rooms.members if m.first_head is not None)

        async def cut_while_down() -> None:
            proxy.cut()
            await asyncio.sleep(seconds)  # how long Redis stays down is the fault itself

        await private_redis.restart(cut_while_down)

    rooms = RoomRun(tmp_path, proxy, [server], total, roles, {"redis_restart": restart_redis})
    # The first half of the sends keeps step with the publishes; the second half is let go at the
    # restart's publish, so that sends are on their way (and resent after the cut) while Redis is down.
    sends = SendRun(tmp_path, proxy, [], 4, sends_total,
                    pace=lambda n: rooms.reached(min(n * total // sends_total, total // 2)))
    started, settled, finished, stuck = time.monotonic(), False, False, ""
    try:
        await sends.connect_all()
        _, finished = await asyncio.gather(rooms.run(schedule), sends.run(sends_schedule, 60))
        stuck = "" if finished else sends.stuck_report() + await server_tasks(server, tmp_path)
        print(stuck)
        new_log = await read_log(private_redis.url, "shotx")
        settled = await rooms.settle(max(new_log, default=0), SETTLE)
    finally:
        await sends.close()
        await rooms.close()
        await proxy.close()
        await server.stop()
    tally = tally_sends(sends.ledger, read_runs(server.runs), server.kills, WINDOW)
    old_head = max(old_log, default=0)
    old, old_members = tally_room(rooms.members, old_log, only=set(old_log.values()),
                                  heads={m.index: old_head for m in rooms.members if m.index not in joined_before})
    new, new_members = tally_room(rooms.members, new_log, only=set(new_log.values()),
                                  heads={index: 0 for index in joined_before})
    # A Redis without persistence that restarts empty loses the log: what a member had
    # not received by then is gone with the store, for that member. That is the store's
    # promise, not ours to keep; ours is that it is only the tail of the old history,
    # and that the member is told (a new_history gap) and then gets the new one whole.
    lost_with_store, excused = 0, []
    for member in rooms.members:
        counted = old_members.get(f"{member.index}:{member.role}")
        if counted and counted["lost"] and counted["missing"] == [(counted["missing"][0][0], old_head)] \
                and "new_history" in member.gaps and not counted["twice"] and not counted["out_of_order"]:
            lost_with_store += counted["lost"]
            excused.append(f"{member.index}:{member.role}:{counted['missing'][0][0]}-{old_head}")
            old["lost"] -= counted["lost"]
            counted["lost_with_the_store"], counted["lost"] = counted["lost"], 0
    room_counts = {name: old[name] + new[name] for name in old}
    figures(line(sends=sends_total, room_messages=len(rooms.published), cuts=proxy.counts.cuts, kills=0,
                 redis_restarts=private_redis.restarts, lost=len(tally.lost) + room_counts["lost"],
                 twice=len(tally.twice) + room_counts["twice"], out_of_order=room_counts["out_of_order"],
                 old_history_lost=old["lost"], old_history_lost_with_the_store=lost_with_store,
                 lost_with_the_store_by=",".join(excused) or "-",
                 new_history_lost=new["lost"], old_head=max(old_log, default=0),
                 new_head=max(new_log, default=0), send_out_of_order=tally.out_of_order,
                 out_of_order_resends=tally.out_of_order_resends, settled=settled,
                 publish_errors=rooms.publish_errors, member_errors=rooms.member_errors, **client_log(),
                 seconds=round(time.monotonic() - started, 1), seed=seed,
                 schedule=digest([schedule, sends_schedule])))
    assert private_redis.restarts == 1 and old_log, "Redis was not restarted under a log"
    assert_all(send_counts(tally), room_counts, {"old history": old_members, "new history": new_members},
               tally, finished, True, sends, stuck)
    assert settled, f"a member had not handled the new history's head {SETTLE} s after the last publish"
