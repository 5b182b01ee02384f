"""Several processes on one port: ``run_workers(app_factory, workers=N)``.

>>> from shotx.server import SxServer
>>> def make_app(worker: int) -> web.Application:   # at module level: each worker imports it
...     app = web.Application()
...     SxServer(app, store="redis://127.0.0.1:6379/0")
...     return app
>>> # if __name__ == "__main__": run_workers(make_app, workers=4, port=3000)

Theory of operation. This process, the primary, binds the port and starts N
worker processes (``multiprocessing``'s spawn start method, so each is a
fresh interpreter that imports the factory by name). It accepts every TCP
connection, reads until the end of its request line, and passes the socket
and those bytes to one worker over a Unix socket pair (``SCM_RIGHTS``):
the worker a long-polling request's sid names, else the next running worker
(``sticky.py``). From there the worker alone talks to the client; the
primary carries no traffic, so N workers use N cores. Room messages, room
logs and remembered replies cross workers through the shared store
(``RedisStore``, ``shared_delivery.py``); a worker refuses to start on a
store the others cannot share.

A worker that dies is started again with the same index (its connections
are gone: clients reconnect, to whichever worker runs). A worker that fails
before it is ready at start-up stops the whole server with its error, as a
single-process server that cannot start would. SIGTERM or SIGINT to the
primary stops accepting, passes the signal on (each worker closes its
connections as ``SxServer`` does on shutdown), and kills what is still
running ``shutdown_timeout`` + 5 s later. A worker whose primary disappears
(even SIGKILLed) sees its end of the pair close and stops too.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .runtime import event_loop, tune_collector
from .sticky import RequestLineError, RoundRobin, request_line, worker_of_request
from .worker_process import READY, AppFactory, worker_main

log = logging.getLogger("shotx.server.workers")

FIRST_LINE_TIMEOUT = 10.0  # a connection that sends no request line within this is closed
KILL_AFTER = 5.0  # seconds past shutdown_timeout before what still runs is SIGKILLed
RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)  # a worker dying again soon waits longer
STAYED_UP = 10.0  # a worker that ran this long restarts at once again


@dataclass
class _Slot:
    index: int
    process: Any = None
    channel: socket.socket | None = None
    started: float = 0.0
    crashes: int = 0
    ready: asyncio.Future[None] | None = None


class Primary:
    """Starts the workers, routes every connection to one, restarts the dead, stops them all."""

    def __init__(self, factory: AppFactory, workers: int, listener: socket.socket, *,
                 shutdown_timeout: float, log_level: int,
                 on_ready: Callable[[int], None] | None = None) -> None:
        self.factory = factory
        self.workers = workers
        self.listener = listener
        self.shutdown_timeout = shutdown_timeout
        self.log_level = log_level
        self.on_ready = on_ready
        self.slots = [_Slot(index) for index in range(workers)]
        self.chooser = RoundRobin(workers)
        self.stopping = asyncio.Event()
        self.failure: str | None = None
        self.serving = False  # every worker was ready once: from then on the dead are restarted
        self._routing: set[asyncio.Task[None]] = set()
        self._context = multiprocessing.get_context("spawn")

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after a clean stop, 1 if the workers could not start."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        for slot in self.slots:
            self._start(slot)
        started = asyncio.ensure_future(self._all_ready())
        stopped = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([started, stopped], return_when=asyncio.FIRST_COMPLETED)
        accepting = None
        if started.done() and started.result():
            self.serving = True
            if self.on_ready is not None:
                self.on_ready(self.listener.getsockname()[1])
            accepting = asyncio.ensure_future(self._accept())
            await stopped
        for task in (started, stopped, accepting):
            if task is not None:
                task.cancel()
        await self._stop_all()
        return 1 if self.failure else 0

    async def _all_ready(self) -> bool:
        try:
            await asyncio.gather(*(slot.ready for slot in self.slots if slot.ready is not None))
        except RuntimeError as error:
            self.failure = str(error)
            log.error("%s; stopping", error)
            self.stopping.set()
            return False
        return True

    def _start(self, slot: _Slot) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self._context.Process(
            target=worker_main, name=f"shotx-worker-{slot.index}",
            args=(self.factory, slot.index, self.workers, child, self.log_level, self.shutdown_timeout))
        process.start()
        child.close()
        parent.setblocking(False)
        slot.process, slot.channel, slot.started = process, parent, time.monotonic()
        slot.ready = ready = loop.create_future()
        loop.add_reader(process.sentinel, self._exited, slot)
        asyncio.ensure_future(self._await_ready(slot, parent))
        return ready

    async def _await_ready(self, slot: _Slot, channel: socket.socket) -> None:
        try:
            message = await asyncio.get_running_loop().sock_recv(channel, 16)
        except OSError:
            return
        if message == READY and slot.channel is channel and slot.ready is not None and not slot.ready.done():
            self.chooser.mark_running(slot.index)
            slot.ready.set_result(None)
            print(f"Shotx worker {slot.index} (pid {slot.process.pid}) ready", flush=True)

    def _exited(self, slot: _Slot) -> None:
        process = slot.process
        asyncio.get_running_loop().remove_reader(process.sentinel)
        process.join()
        self.chooser.mark_stopped(slot.index)
        if slot.channel is not None:
            slot.channel.close()
        slot.channel = None
        code = process.exitcode
        if slot.ready is not None and not slot.ready.done():
            slot.ready.set_exception(RuntimeError(f"worker {slot.index} exited with {code} before it was ready"))
        if self.stopping.is_set() or not self.serving:
            return  # at start-up _all_ready stops the server with the error above
        slot.crashes = 0 if time.monotonic() - slot.started > STAYED_UP else slot.crashes + 1
        delay = RESTART_DELAYS[min(slot.crashes, len(RESTART_DELAYS) - 1)]
        log.warning("worker %d (pid %s) exited with %s; starting it again in %.1f s",
                    slot.index, process.pid, code, delay)
        asyncio.get_running_loop().call_later(delay, self._restart, slot)

    def _restart(self, slot: _Slot) -> None:
        if not self.stopping.is_set():
            ready = self._start(slot)
            ready.add_done_callback(lambda future: future.exception())  # a failed restart is logged

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _address = await loop.sock_accept(self.listener)
            task = asyncio.ensure_future(self._route(conn))
            self._routing.add(task)
            task.add_done_callback(self._routing.discard)

    async def _route(self, conn: socket.socket) -> None:
        """Read the request line, pass the connection to its worker, let go of it here."""
        try:
            async with asyncio.timeout(FIRST_LINE_TIMEOUT):
                first, line = await _read_request_line(conn)
            if line is not None:
                await self._pass(conn, first, worker_of_request(line))
        except (TimeoutError, RequestLineError, OSError) as error:
            log.debug("connection closed before it was passed: %s", error)
        finally:
            conn.close()

    async def _pass(self, conn: socket.socket, first: bytes, wanted: int | None) -> None:
        for _ in range(self.workers):
            index = self.chooser.choose(wanted)
            if index is None:
                return  # no worker runs: the connection is closed, the client retries
            channel = self.slots[index].channel
            try:
                if channel is not None:
                    await _send_with_fd(channel, first, conn.fileno())
                    return
            except OSError as error:  # that worker is exiting; its sentinel will say so
                log.debug("worker %d did not take a connection: %s", index, error)
            self.chooser.mark_stopped(index)
            wanted = None

    async def _stop_all(self) -> None:
        self.listener.close()
        for task in list(self._routing):
            task.cancel()
        live = [slot.process for slot in self.slots if slot.process is not None and slot.process.is_alive()]
        for process in live:
            process.terminate()
        deadline = time.monotonic() + self.shutdown_timeout + KILL_AFTER
        loop = asyncio.get_running_loop()
        for process in live:
            await loop.run_in_executor(None, process.join, max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                await loop.run_in_executor(None, process.join)


async def _read_request_line(conn: socket.socket) -> tuple[bytes, bytes | None]:
    """What the client sent until its request line ended (``None``: it closed first)."""
    loop = asyncio.get_running_loop()
    first = b""
    while True:
        chunk = await loop.sock_recv(conn, 16384)
        if not chunk:
            return first, None
        first += chunk
        line = request_line(first)
        if line is not None:  # else it raises RequestLineError once too much came without one
            return first, line


async def _send_with_fd(channel: socket.socket, data: bytes, fd: int) -> None:
    """``socket.send_fds`` on a non-blocking channel, waiting while the worker's queue is full."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(channel, [data], [fd])
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(channel.fileno(), writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(channel.fileno())


# Connections the kernel queues before they are accepted. aiohttp's run_app listens again
# with 128 even on a socket given to it: 500 clients connecting at once then overflowed it,
# and those whose SYN was dropped retried a second later (1.1 s to connect 500, Node 0.3 s).
LISTEN_BACKLOG = 1024


def bind(host: str, port: int, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """The listening socket; port 0 picks a free one (``sock.getsockname()[1]``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def run_workers(app_factory: AppFactory, *, workers: int, host: str = "127.0.0.1", port: int = 3000,
                sock: socket.socket | None = None, shutdown_timeout: float = 5.0,
                on_ready: Callable[[int], None] | None = None) -> int:
    """Serve ``app_factory(worker_index)`` from ``workers`` processes on one port; returns the exit status.

    ``app_factory`` must be importable by name (a module-level function, or a
    ``functools.partial`` of one): each worker is a fresh interpreter. Call
    ``run_workers`` under ``if __name__ == "__main__":``, as
    ``multiprocessing`` requires. ``on_ready(port)`` runs in the primary once
    every worker accepts connections. With ``workers=1`` the application runs
    in this process, as ``web.run_app`` would run it. Every process it serves
    from (this one with ``workers=1``) runs on ``runtime.event_loop()`` with
    ``runtime.tune_collector()`` applied once the application is built.
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError("workers must be a positive integer")
    listener = sock if sock is not None else bind(host, port)
    listener.setblocking(False)
    if workers == 1:
        return _run_one(app_factory, listener, shutdown_timeout, on_ready)
    primary = Primary(app_factory, workers, listener, shutdown_timeout=shutdown_timeout,
                      log_level=logging.getLogger().getEffectiveLevel(), on_ready=on_ready)
    return asyncio.run(primary.run())


def _run_one(app_factory: AppFactory, listener: socket.socket, shutdown_timeout: float,
             on_ready: Callable[[int], None] | None) -> int:
    async def app() -> web.Application:
        made = app_factory(0)
        made = await made if asyncio.iscoroutine(made) else made
        if on_ready is not None:
            made.on_startup.append(lambda _app: _announce(on_ready, listener))
        tune_collector()
        return made

    web.run_app(app(), sock=listener, print=None, handle_signals=True, shutdown_timeout=shutdown_timeout,
                backlog=LISTEN_BACKLOG, loop=event_loop())
    return 0


async def _announce(on_ready: Callable[[int], None], listener: socket.socket) -> None:
    on_ready(listener.getsockname()[1])
