"""Many SxClients sending through the fault proxy while a schedule cuts, stalls and kills.

The schedule is drawn from the seed before anything runs and keyed to
progress (the number of sends answered), so a seed gives the same faults at
the same points of the run. Each client has a SQLite store; a ``recreate``
closes it with sends still owed and opens a new client on the same file,
which must send them (its outbox is the only place they are).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shotx.client import SxClient

from fault_ledger import Key, SendLedger
from fault_processes import ServerProcess
from proxy import FaultProxy

IN_FLIGHT = 32  # unanswered sends per client at a time: faults land mid-stream, not after it
REFUSE_EVERY = 97


def send_schedule(rng: random.Random, total: int, cuts: int, kills: int, recreations: int, clients: int,
                  servers: int = 1, restart: bool = True) -> list[list[Any]]:
    """``[answered_at, action, arg]`` sorted by ``answered_at``, all from ``rng``."""
    def at() -> int:
        return rng.randrange(total // 20, total * 19 // 20)

    events: list[list[Any]] = [[at(), "cut", None] for _ in range(cuts)]
    events += [[at(), "stall", round(rng.uniform(0.05, 0.4), 3)] for _ in range(max(1, cuts // 4))]
    kill_points = sorted(rng.sample(range(total // 10, total * 9 // 10, max(1, total // 50)), kills))
    events += [[point, "kill", [index % servers, round(rng.uniform(0.05, 0.4), 3) if restart else None]]
               for index, point in enumerate(kill_points)]
    events += [[at(), "recreate", rng.randrange(clients)] for _ in range(recreations)]
    return sorted(events, key=lambda event: (event[0], event[1]))


def _task_state(task: asyncio.Task[Any] | None) -> str:
    if task is None:
        return "none"
    if not task.done():
        return "running"
    return "cancelled" if task.cancelled() else f"done({task.exception()!r})"


def _transport_state(client: SxClient) -> str:
    """python-socketio's and python-engineio's view of the client's connection (CPython transport)."""
    sio = getattr(client.transport, "_sio", None)
    if sio is None:
        return "none"
    eio = sio.eio
    ws = getattr(eio, "ws", None)
    return (f"sio(connected={sio.connected} sid={sio.sid} namespaces={list(sio.namespaces)}) "
            f"eio(state={eio.state} sid={eio.sid} queue={eio.queue.qsize() if eio.queue else None} "
            f"read={_task_state(eio.read_loop_task)} write={_task_state(eio.write_loop_task)} "
            f"ws_closed={None if ws is None else ws.closed})")


def _where(task: asyncio.Task[Any]) -> str:
    """Where a task of the client library waits: its innermost frames, or '' for other tasks."""
    frames = [f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{frame.f_code.co_name}"
              for frame in task.get_stack(limit=12)]
    if not any(("client" in name or "sender" in name or "transport" in name) for name in frames):
        return ""
    return f"  task {task.get_name()}: " + " > ".join(frames[-4:])


class SendRun:
    def __init__(self, tmp_path: Path, proxy: FaultProxy, servers: list[ServerProcess], clients: int,
                 total: int, pace: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.tmp_path, self.proxy, self.servers = tmp_path, proxy, servers
        self.pace = pace  # awaited before send n is queued: keeps the sends in step with another run
        self.count, self.total = clients, total
        self.ledger = SendLedger()
        self.clients: list[SxClient] = [self._client(c) for c in range(clients)]
        self.locks = [asyncio.Lock() for _ in range(clients)]
        self.slots = [asyncio.Semaphore(IN_FLIGHT) for _ in range(clients)]
        self.futures: dict[Key, asyncio.Future[Any]] = {}
        self.owner: dict[Key, SxClient] = {}
        self.answered = 0
        self.progress = asyncio.Event()
        self.recreated = 0
        self.kills = 0
        self._background: set[asyncio.Task[Any]] = set()

    def _client(self, c: int) -> SxClient:
        return SxClient(self.proxy.url, store=self.tmp_path / f"client-{c}.sqlite3",
                        reconnection_delay=0.05, reconnection_delay_max=0.3)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def connect_all(self) -> None:
        await asyncio.gather(*(client.connect("valid", timeout=20) for client in self.clients))

    def _answered(self, key: Key, c: int, future: asyncio.Future[Any]) -> None:
        self.slots[c].release()
        self.answered += 1  # progress: answered, or handed to the next client on the store
        self.progress.set()
        if future.cancelled():  # its client was closed: the next client on the store owes it
            self.ledger.orphaned.add(key)
            return
        error = future.exception()
        if error is None:
            self.ledger.acked[key] = future.result()
        else:
            self.ledger.failed[key] = f"{type(error).__name__}: {error}"

    async def _worker(self, c: int) -> None:
        for n in range(c, self.total, self.count):
            key = (c, n)
            type_ = "fault_refuse" if n % REFUSE_EVERY == REFUSE_EVERY // 2 else "fault_send"
            if self.pace is not None:
                await self.pace(n)
            await self.slots[c].acquire()
            async with self.locks[c]:
                client = self.clients[c]
                self.ledger.sent[key] = type_
                future = await client.queue(type_, {"c": c, "n": n})
            self.futures[key], self.owner[key] = future, client
            future.add_done_callback(lambda f, key=key, c=c: self._answered(key, c, f))

    async def _wait_answered(self, count: int) -> None:
        while self.answered < count:
            self.progress.clear()
            await self.progress.wait()

    async def _kill(self, index: int, down_for: float | None) -> None:
        server = self.servers[index]
        await server.kill()
        self.kills += 1
        if down_for is not None:
            await asyncio.sleep(down_for)  # how long the server stays down is the fault itself
            await server.start()

    async def _recreate(self, c: int) -> None:
        async with self.locks[c]:
            old = self.clients[c]
            await old.close()
            for key, future in list(self.futures.items()):
                if self.owner.get(key) is old and not future.done():
                    future.cancel()
            self.clients[c] = new = self._client(c)
            await new.restore()
            self._spawn(new.connect("valid"))
            self.recreated += 1

    async def _drive(self, schedule: list[list[Any]]) -> None:
        for answered_at, action, arg in schedule:
            await self._wait_answered(answered_at)
            if action == "cut":
                self.proxy.cut()
            elif action == "stall":
                self._spawn(self.proxy.stall(arg))
            elif action == "kill":
                await self._kill(*arg)
            elif action == "recreate":
                await self._recreate(arg)

    async def run(self, schedule: list[list[Any]], budget: float) -> bool:
        """Send everything while the schedule runs; True if all was answered within ``budget`` seconds."""
        deadline = time.monotonic() + budget
        workers = [asyncio.ensure_future(self._worker(c)) for c in range(self.count)]
        driver = asyncio.ensure_future(self._drive(schedule))
        try:
            await asyncio.wait_for(asyncio.gather(*workers, driver), budget)
            await asyncio.wait_for(self._wait_answered(self.total),
                                   max(1.0, deadline - time.monotonic()))
            while any(client.queued for client in self.clients):  # orphans: owed by the new clients
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.02)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            for task in (*workers, driver):
                task.cancel()
            await asyncio.gather(*workers, driver, return_exceptions=True)

    def stuck_report(self) -> str:
        """What each client with unanswered sends is doing, for a failure message: its state, its
        sender's bookkeeping and where its tasks wait (a stall names its own cause)."""
        lines = []
        for c, client in enumerate(self.clients):
            owed = sorted(key[1] for key, future in self.futures.items()
                          if self.owner.get(key) is client and not future.done())
            if not owed:
                continue
            sender = client.sender
            lines.append(f"client {c}: state={client.state} unanswered={len(owed)} first={owed[0]} "
                         f"in_flight={sender._in_flight} queue={len(sender._queue)} live={sender._live} "
                         f"paused={sender.throttle.paused} outbox={len(sender.outbox)} "
                         f"pump={_task_state(sender._pump_task)} flush={_task_state(sender._flush_task)} "
                         f"transport={_transport_state(client)}")
        if lines:
            lines += [_where(task) for task in asyncio.all_tasks() if _where(task)]
        return "\n".join(lines)

    def still_queued(self) -> int:
        return sum(client.queued for client in self.clients)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for client in self.clients:
            await client.close()
        for future in self.futures.values():
            future.cancel()

