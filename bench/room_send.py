"""Server time per ``await sx.to(room).send(...)``, measured in-process.

Why in-process: a room send is a server-side call, so the honest unit is the
CPU the server process spends on it (``time.process_time``), which a noisy
neighbour on this shared machine barely moves, next to the wall time
(``time.perf_counter``). The server listens on 127.0.0.1 so a real member
(the Node load generator in ``member`` mode, another process) can join; with
a member, the clock runs until that member has received every message, so
the CPU includes encoding and writing each broadcast frame.

    python bench/room_send.py --sends 20000 --json

prints one JSON object per scenario (see :data:`SCENARIOS`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from servers import delete_keys
from shotx.client import protocol
from shotx.server import SxServer

BENCH = Path(__file__).resolve().parent
PAYLOAD = {"message": "Hello from server!", "n": 0}


@dataclass
class Result:
    """One scenario's cost; ``sends_per_commit`` shows how well commits group."""

    scenario: str
    store: str
    sends: int
    cpu_us: float
    wall_us: float
    commits: int | None

    @property
    def sends_per_commit(self) -> float | None:
        return self.sends / self.commits if self.commits else None


class CommitCounter:
    """Counts SQLite group commits by wrapping the store instance's ``_commit``.

    Bench-only peeking at a private method: if the store changes shape the
    count is simply reported as unknown.
    """

    def __init__(self, store: Any) -> None:
        self.count = 0
        original = getattr(store, "_commit", None)
        self.enabled = callable(original) and hasattr(store, "_commit_scheduled")
        if self.enabled:
            def counted() -> None:
                if store._commit_scheduled:
                    self.count += 1
                original()
            store._commit = counted


class Member:
    """A real client in a room: the Node load generator in ``member`` mode."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.process: asyncio.subprocess.Process | None = None

    async def join(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        await self._expect("JOINED", 30)

    async def received_all(self) -> None:
        await self._expect("DONE", 120)
        await self.stop()

    async def _expect(self, word: str, timeout: float) -> None:
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line.decode().startswith(word):
            raise RuntimeError(f"member said {line!r}, expected {word}")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def sequential(send: Callable[[int], Awaitable[Any]], count: int) -> None:
    """One sender: each send awaits its durable commit before the next."""
    for n in range(count):
        await send(n)


async def concurrent(send: Callable[[int], Awaitable[Any]], count: int, tasks: int) -> None:
    """``tasks`` senders at once: their writes may share a group commit."""
    async def worker(first: int) -> None:
        for n in range(first, count, tasks):
            await send(n)
    await asyncio.gather(*(worker(i) for i in range(tasks)))


async def measure(name: str, store: str, count: int, counter: CommitCounter,
                  run: Callable[[], Awaitable[None]], member: Member | None = None) -> Result:
    """CPU and wall time of ``run`` (plus delivery to ``member``) per send."""
    commits = counter.count
    cpu, wall = time.process_time(), time.perf_counter()
    await run()
    if member is not None:
        await member.received_all()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Result(name, store, count, cpu / count * 1e6, wall / count * 1e6,
                  counter.count - commits if counter.enabled else None)


def room_sender(sx: SxServer, room: str) -> Callable[[int], Awaitable[Any]]:
    """The call under test, exactly as a user writes it."""
    return lambda n: sx.to(room).send("notification", {**PAYLOAD, "n": n})


def rooms_sender(sx: SxServer, prefix: str, rooms: int) -> Callable[[int], Awaitable[Any]]:
    """Send ``n`` goes to room ``prefix-(n % rooms)``: each concurrent sender has its own room."""
    return lambda n: sx.to(f"{prefix}-{n % rooms}").send("notification", {**PAYLOAD, "n": n})


def bare_emitter(sx: SxServer, room: str) -> Callable[[int], Awaitable[Any]]:
    """python-socketio's own broadcast of the same frame, with no log: the floor."""
    return lambda n: sx.sio.emit(protocol.MESSAGE_EVENT, protocol.room_message(
        "notification", {**PAYLOAD, "n": n}, protocol.uuid7(), room, n + 1), room=room)


async def start(store: Any) -> tuple[SxServer, web.AppRunner, int]:
    """An SxServer with an accept-all auth handler, listening on loopback."""
    app = web.Application()
    sx = SxServer(app, store=store, retention_interval=0)
    sx.set_auth_handler(lambda token, socket: {"user_id": "member"})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return sx, runner, port


async def run_store(store_kind: str, store: Any, count: int, loadgen: list[str],
                    scenarios: list[Scenario]) -> list[Result]:
    """Every scenario of ``scenarios`` against one fresh server and store."""
    sx, runner, port = await start(store)
    counter = CommitCounter(sx.store)
    url = f"http://127.0.0.1:{port}"
    await sequential(room_sender(sx, "warm-up"), min(count, 2000))
    results = []
    try:
        for scenario in scenarios:
            results.append(await run_scenario(scenario, sx, store_kind, count, counter, loadgen, url))
    finally:
        await runner.cleanup()
    return results


@dataclass(frozen=True)
class Scenario:
    """What is sent, by how many senders, and whether a member must receive it."""

    name: str
    send: str  # "room", "rooms" (one room per sender) or "bare" (sio.emit, no log)
    member: bool
    senders: int = 1


SCENARIOS = {
    "sqlite": [Scenario("sequential, no member", "room", False),
               Scenario("sequential, one member", "room", True),
               Scenario("concurrent, one room", "room", False, 100),
               Scenario("concurrent, a room each", "rooms", False, 100),
               Scenario("concurrent, a room each, one member in each", "rooms", True, 100)],
    # Redis: the log shared by several server processes; with a member, the
    # clock includes the message's way back through Redis's publish to this
    # server's subscription (shared_delivery.py). Redis's own CPU (another
    # process) is not counted.
    "redis": [Scenario("sequential, no member", "room", False),
              Scenario("sequential, one member", "room", True),
              Scenario("concurrent, one room", "room", False, 100)],
    # The memory store's send never yields, so a sequential send to a member
    # would only queue frames and measure batched writes: no member here.
    "memory": [Scenario("sequential, no member", "room", False),
               Scenario("bare sio.emit, one member", "bare", True)],
}


def sender(scenario: Scenario, sx: SxServer, room: str) -> Callable[[int], Awaitable[Any]]:
    if scenario.send == "bare":
        return bare_emitter(sx, room)
    return rooms_sender(sx, room, scenario.senders) if scenario.send == "rooms" else room_sender(sx, room)


async def run_scenario(scenario: Scenario, sx: SxServer, store_kind: str, count: int,
                       counter: CommitCounter, loadgen: list[str], url: str) -> Result:
    """Set up one scenario (a member joins first where it has one) and measure it."""
    room = f"bench-{time.monotonic_ns()}"
    member = None
    if scenario.member:
        rooms = scenario.senders if scenario.send == "rooms" else 1
        member = Member([*loadgen, "member", "--url", url, "--room", room, "--rooms", str(rooms),
                         "--expect", str(count)])
        await member.join()
    send = sender(scenario, sx, room)
    if scenario.senders > 1:
        run = lambda: concurrent(send, count, scenario.senders)  # noqa: E731
    else:
        run = lambda: sequential(send, count)  # noqa: E731
    try:
        return await measure(scenario.name, store_kind, count, counter, run, member)
    finally:
        if member is not None:
            await member.stop()


async def main_async(args: argparse.Namespace) -> list[Result]:
    loadgen = shlex.split(args.loadgen)
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cancels like Ctrl-C, so members are stopped in ``finally``
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shotx-bench-", dir=args.tmp) as tmp:
        for kind in args.stores:
            store: Any = "memory" if kind == "memory" else str(Path(tmp) / "rooms.sqlite3")
            if kind == "redis":  # keys under a prefix of this process's own, deleted afterwards
                from shotx.server import RedisStore
                store = RedisStore(args.redis, prefix=f"shotx-bench-{os.getpid()}")
            try:
                results += await run_store(kind, store, args.sends, loadgen, SCENARIOS[kind])
            finally:
                if kind == "redis":
                    delete_keys(args.redis, store.prefix)  # servers.py's: the bench's one clean-up of Redis
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--stores", nargs="+", default=["sqlite", "memory"], choices=sorted(SCENARIOS))
    parser.add_argument("--loadgen", default=shlex.join(["node", str(BENCH / "loadgen.mjs")]),
                        help="command that runs the load generator (its member mode)")
    parser.add_argument("--tmp", default=None, help="folder for the SQLite file (default: the system's)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for --stores redis")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(main_async(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
    for result in results:
        row = {**asdict(result), "sends_per_commit": result.sends_per_commit}
        print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    sys.exit(main())
