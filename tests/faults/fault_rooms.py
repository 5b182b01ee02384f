"""A publisher appends room messages while members flap, drop, and are recreated from their store.

One loop publishes message k (``POST /demo/publish?room=``, straight to a
server: the publisher is the application's backend) and then runs every
scheduled action due at k, so a seed gives the same actions between the
same messages. Members are SxClients with SQLite stores connected through
the fault proxy; each records what its handler got, in handling order.

Member roles (all drawn from the seed):

* ``steady``: joined from the start; only cuts, stalls and kills hit it;
* ``flapper``: joins at some point, then disconnects and reconnects;
* ``joindrop``: joins and disconnects before its first message (nothing is
  published between its join answer and its disconnect), comes back later;
* ``recreated``: closed with its state in its SQLite store and replaced by
  a new client on the same file (it must rejoin and resume from there).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from shotx.client import SxClient, SxError

from fault_ledger import tally_member
from fault_processes import ServerProcess
from proxy import FaultProxy

ROOM = "faults-room"
JOIN_TIMEOUT = 5  # seconds the application gives connect() and join() (loopback: plenty)
SETTLE = 10  # seconds members get, after the last publish, to handle the head
ROLES = ["steady", "steady", "flapper", "flapper", "flapper", "flapper",
         "joindrop", "joindrop", "recreated", "recreated"]


@dataclass
class Member:
    index: int
    role: str
    store: Path
    url: str
    client: SxClient | None = None
    handled: list[tuple[int, str]] = field(default_factory=list)
    restarts: set[int] = field(default_factory=set)  # indexes into handled where a new client began
    first_head: int | None = None  # the head in the answer to its first join
    online: bool = False
    errors: list[str] = field(default_factory=list)  # connects and joins the app was told did not complete
    _late_join: asyncio.Future[None] | None = None  # waits for the answer of a join that timed out
    gaps: list[str] = field(default_factory=list)  # the reasons of the gaps its client reported

    def make_client(self) -> SxClient:
        client = SxClient(self.url, store=self.store, reconnection_delay=0.05, reconnection_delay_max=0.3)
        client.on_message("notification", self._handle)
        client.on_gap(lambda gap: self.gaps.append(gap.reason))
        self.restarts.add(len(self.handled))
        self.client = client
        return client

    def _handle(self, data: Any, meta: dict[str, Any]) -> None:
        if meta.get("room") == ROOM:
            self.handled.append((meta["offset"], meta["id"]))

    async def join(self, head_now: int) -> None:
        """Connect, join (the first join fixes what this member is owed), stay online.

        An application is told when a connect or a join does not complete in
        time (the client goes on retrying in the background); counted in
        ``errors``, and the member is then owed what comes after ``head_now``,
        the head when it asked to join.
        """
        client = self.client or self.make_client()
        self.online = True
        try:
            await client.connect("valid", timeout=JOIN_TIMEOUT)
        except SxError as error:  # it goes on connecting; a join is remembered and sent on connect
            self.errors.append(f"{type(error).__name__}: {error}")
        if self.first_head is not None:
            return
        try:
            answer = await client.join(ROOM, timeout=JOIN_TIMEOUT)
            self.first_head = int(answer["head"])
        except SxError as error:
            # The join is still on its way (sent on the next connect): the member's
            # position starts where the server answers it, as for any first join.
            self.errors.append(f"{type(error).__name__}: {error}")
            self.first_head = head_now
            self._late_join = asyncio.ensure_future(self._take_late_answer(client))

    async def _take_late_answer(self, client: SxClient) -> None:
        try:
            answer = await client.join(ROOM, timeout=0)
        except SxError:
            return
        self.first_head = int(answer["head"])

    async def go_offline(self) -> None:
        if self.client is not None:
            await self.client.disconnect()
        self.online = False

    async def go_online(self, head_now: int) -> None:
        await self.join(head_now)

    async def recreate(self, head_now: int) -> None:
        if self.client is not None:
            await self.client.close()
        self.client = None
        self.make_client()
        await self.join(head_now)

    @property
    def last(self) -> int:
        return max((offset for offset, _ in self.handled), default=0)


def room_schedule(rng: random.Random, total: int, cuts: int, kills: int,
                  roles: list[str] = ROLES) -> list[list[Any]]:
    """``[published_at, action, arg]`` sorted, all drawn from ``rng``."""
    def at(low: float = 0.05, high: float = 0.9) -> int:
        return rng.randrange(int(total * low), int(total * high))

    events: list[list[Any]] = [[at(), "cut", None] for _ in range(cuts)]
    events += [[at(), "stall", round(rng.uniform(0.05, 0.3), 3)] for _ in range(max(1, cuts // 4))]
    events += [[at(0.2, 0.8), "kill", round(rng.uniform(0.05, 0.3), 3)] for _ in range(kills)]
    for index, role in enumerate(roles):
        if role == "steady":
            events.append([0, "join", index])
            continue
        start = 0 if role == "recreated" else at(0.0, 0.5)
        events.append([start, "joindrop" if role == "joindrop" else "join", index])
        for _ in range(3 if role == "flapper" else 2):
            down = at(max(0.05, start / total + 0.01), 0.85)
            if role == "recreated":
                events.append([down, "recreate", index])
            elif role == "flapper":
                events += [[down, "offline", index], [down + rng.randrange(5, 100), "online", index]]
        if role == "joindrop":
            events.append([start + rng.randrange(5, 60), "online", index])
    return sorted(events, key=lambda event: event[0])


class RoomRun:
    behind: list[str] = []  # after a settle that timed out: who was behind, and how
    def __init__(self, tmp_path: Path, proxy: FaultProxy, servers: list[ServerProcess], total: int,
                 roles: list[str] = ROLES, actions: dict[str, Callable[[Any], Awaitable[None]]] | None = None) -> None:
        self.proxy, self.servers, self.total = proxy, servers, total
        self.members = [Member(index, role, tmp_path / f"member-{index}.sqlite3", proxy.url)
                        for index, role in enumerate(roles)]
        self.actions = actions or {}  # more actions a test schedules (a Redis restart)
        self.published: list[dict[str, Any]] = []  # acknowledged publishes: {"id", "offset"}
        self.publish_errors = 0
        self.kills = 0
        self.joindrops = 0
        self.recreated = 0
        self._turn = 0  # which server the next publish goes to
        self._stalls: set[asyncio.Task[None]] = set()
        self._progress = asyncio.Event()  # set on every acknowledged publish

    async def reached(self, count: int) -> None:
        """Return once ``count`` publishes were acknowledged (another run can pace itself by them)."""
        while len(self.published) < count:
            self._progress.clear()
            await self._progress.wait()

    @property
    def head_now(self) -> int:
        """The highest offset acknowledged so far (publishes are one at a time)."""
        return max((entry["offset"] for entry in self.published[-1:]), default=0)

    @property
    def member_errors(self) -> int:
        return sum(len(member.errors) for member in self.members)

    async def _publish(self, session: aiohttp.ClientSession, k: int) -> None:
        failures = 0
        while True:
            server = self.servers[self._turn % len(self.servers)]
            self._turn += 1
            if not server.up.is_set():  # killed and not (yet) restarted: the next one
                if not any(other.up.is_set() for other in self.servers):
                    await server.up.wait()
                continue
            try:
                async with session.post(f"{server.url}/demo/publish", params={"room": ROOM}, json={"k": k}) as reply:
                    if reply.status == 200:
                        self.published.append(await reply.json())
                        self._progress.set()
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            self.publish_errors += 1  # a server died under it, or its store refused: try the next
            failures += 1
            assert failures < 100, f"publish {k} failed 100 times in a row"

    async def _act(self, action: str, arg: Any) -> None:
        if action == "cut":
            self.proxy.cut()
        elif action == "stall":
            task = asyncio.ensure_future(self.proxy.stall(arg))
            self._stalls.add(task)
            task.add_done_callback(self._stalls.discard)
        elif action == "kill":
            server = self.servers[self.kills % len(self.servers)]
            await server.kill()
            self.kills += 1
            await asyncio.sleep(arg)  # how long the server stays down is the fault itself
            await server.start()
        elif action == "join":
            await self.members[arg].join(self.head_now)
        elif action == "joindrop":
            await self.members[arg].join(self.head_now)
            await self.members[arg].go_offline()  # before any message was published after its join
            self.joindrops += 1
        elif action == "offline":
            await self.members[arg].go_offline()
        elif action == "online":
            await self.members[arg].go_online(self.head_now)
        elif action == "recreate":
            await self.members[arg].recreate(self.head_now)
            self.recreated += 1
        else:
            await self.actions[action](arg)

    async def run(self, schedule: list[list[Any]]) -> None:
        pending = list(schedule)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for k in range(self.total + 1):
                while pending and pending[0][0] <= k:
                    _, action, arg = pending.pop(0)
                    await self._act(action, arg)
                if k < self.total:
                    await self._publish(session, k)
            for _, action, arg in pending:  # anything scheduled past the end: bring members back
                if action in ("online", "join"):
                    await self._act(action, arg)
        for member in self.members:
            if not member.online:
                await member.go_online(self.head_now)

    async def settle(self, head: int, seconds: float) -> bool:
        """Wait until every member handled the head (what it missed below it will not come)."""
        deadline = time.monotonic() + seconds
        while behind := [member for member in self.members if member.last < head]:
            if time.monotonic() > deadline:
                self.behind = [f"{m.index}:{m.role} last={m.last} online={m.online} errors={m.errors} "
                               f"state={m.client.state if m.client else None} "
                               f"answers={m.client.join_answers if m.client else None}" for m in behind]
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        for task in list(self._stalls):
            task.cancel()
        for member in self.members:
            if member._late_join is not None:
                member._late_join.cancel()
            if member.client is not None:
                await member.client.close()


TALLIED = ("lost", "twice", "twice_in_window", "out_of_order", "wrong_id")


def tally_room(members: list[Member], log: dict[int, str], heads: dict[int, int] | None = None,
               only: set[str] | None = None) -> tuple[dict[str, int], dict[str, Any]]:
    """Totals over members (and, per member with any fault, the details): each against ``log``.

    ``heads`` overrides where a member's count starts (default: its first
    join's head); ``only`` keeps the handled messages with these ids (one
    history of a room whose log was replaced).
    """
    head = max(log, default=0)
    totals = dict.fromkeys(TALLIED, 0)
    by_member: dict[str, Any] = {}
    for member in members:
        after = (heads or {}).get(member.index, member.first_head or 0)
        handled, restarts = [], set()
        for index, (offset, message_id) in enumerate(member.handled):
            if index in member.restarts:
                restarts.add(len(handled))
            if only is None or message_id in only:
                handled.append((offset, message_id))
        tally = tally_member(handled, log, after, head, restarts)
        for name in TALLIED:
            totals[name] += getattr(tally, name)
        if any(getattr(tally, name) for name in TALLIED):
            client = member.client
            by_member[f"{member.index}:{member.role}"] = {
                **vars(tally), "after": after, "handled": len(handled),
                "last_join_answer": client.join_answers.get(ROOM) if client else None, "errors": member.errors[:3],
                "offset": client.rooms.offsets if client else None}
    return totals, by_member
