"""One worker process of ``run_workers``: serves the connections the primary passes it.

The primary (``workers.py``) accepts every TCP connection on the port, reads
its request line to choose a worker (``sticky.py``), and passes the socket
over a Unix socket pair (``SCM_RIGHTS``) with the bytes it has read. This
process builds the application with the user's factory, runs aiohttp's
request handling on each passed socket (``loop.connect_accepted_socket``
with aiohttp's own protocol factory, ``AppRunner.server``) after feeding it
those first bytes, and stops on SIGTERM or SIGINT, or when the primary goes
away (its end of the pair closes), so no worker outlives its primary.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .engineio_sockets import tag_session_ids
from .runtime import event_loop, tune_collector
from .server import SX_SERVERS
from .store import SharedStore

log = logging.getLogger("shotx.server.workers")

AppFactory = Callable[[int], "web.Application | Any"]
READY = b"ready"
START_FAILED = 3  # exit status of a worker that could not build or start its application
MAX_PASSED_BYTES = 65536


class _FirstBytes(asyncio.Protocol):
    """Hands a passed connection to aiohttp's protocol with the bytes the primary read.

    It steps aside in ``connection_made`` (``transport.set_protocol``), before
    the transport reads anything, so the request's bytes stay in order.
    """

    def __init__(self, inner: asyncio.Protocol, first: bytes) -> None:
        self._inner = inner
        self._first = first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.set_protocol(self._inner)
        self._inner.connection_made(transport)
        self._inner.data_received(self._first)


async def _one_request_per_connection(request: web.Request, response: web.StreamResponse) -> None:
    """Why: the primary routes a connection by its first request only, and
    clients reuse idle keep-alive connections across sessions (``sticky.py``)."""
    if not isinstance(response, web.WebSocketResponse):
        response.force_close()  # aiohttp closes the connection after this response
        response.headers["Connection"] = "close"  # its headers were made before this hook runs


def check_shared_stores(app: web.Application, workers: int) -> None:
    """Refuse a store that several processes cannot share, with the reason, before starting."""
    servers = app.get(SX_SERVERS, [])
    if workers > 1:
        for sx in servers:
            if not isinstance(sx.store, SharedStore):
                raise ValueError(f"{workers} workers need a store all of them share (a redis:// URL); "
                                 f"this application's SxServer has a {type(sx.store).__name__}")


async def build(factory: AppFactory, index: int, workers: int) -> web.Application:
    """The worker's application, its sids tagged with its index (``sticky.py``)."""
    app = factory(index)
    if inspect.isawaitable(app):
        app = await app
    if not isinstance(app, web.Application):
        raise TypeError(f"the application factory returned {type(app).__name__}, not an aiohttp web.Application")
    check_shared_stores(app, workers)
    for sx in app.get(SX_SERVERS, []):
        tag_session_ids(sx.sio.eio, index)
    app.on_response_prepare.append(_one_request_per_connection)
    return app


class _Connections:
    """Receives passed sockets on the channel and serves each with aiohttp."""

    def __init__(self, channel: socket.socket, runner: web.AppRunner, stop: asyncio.Event) -> None:
        self._channel = channel
        self._runner = runner
        self._stop = stop
        self._tasks: set[asyncio.Task[Any]] = set()

    def readable(self) -> None:
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(self._channel, MAX_PASSED_BYTES, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data and not fds:  # the primary is gone
                self._stop.set()
                return
            for fd in fds:
                self._serve(socket.socket(fileno=fd), data)

    def _serve(self, conn: socket.socket, first: bytes) -> None:
        conn.setblocking(False)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(loop.connect_accepted_socket(lambda: _FirstBytes(server(), first), conn))
        self._tasks.add(task)
        task.add_done_callback(self._done(conn))

    def _done(self, conn: socket.socket) -> Callable[[asyncio.Task[Any]], None]:
        def done(task: asyncio.Task[Any]) -> None:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.debug("a passed connection could not be served: %s", task.exception())
                conn.close()
        return done


async def serve(factory: AppFactory, index: int, workers: int, channel: socket.socket,
                shutdown_timeout: float) -> None:
    """Build, start, tell the primary ``ready``, serve until told to stop, then clean up."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = await build(factory, index, workers)
    tune_collector()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        channel.setblocking(False)
        connections = _Connections(channel, runner, stop)
        loop.add_reader(channel.fileno(), connections.readable)
        await loop.sock_sendall(channel, READY)
        await stop.wait()
        loop.remove_reader(channel.fileno())
    finally:
        channel.close()
        await runner.cleanup()


def worker_main(factory: AppFactory, index: int, workers: int, channel: socket.socket,
                log_level: int, shutdown_timeout: float) -> None:
    """The target of a worker process (``multiprocessing``'s spawn start method)."""
    logging.basicConfig(level=log_level, format=f"%(levelname)s worker {index}: %(name)s: %(message)s")
    try:
        with asyncio.Runner(loop_factory=event_loop) as runner:
            runner.run(serve(factory, index, workers, channel, shutdown_timeout))
    except Exception as error:  # the application's own start-up may raise anything; say it once
        log.error("worker %d stopped: %s: %s", index, type(error).__name__, error)
        sys.exit(START_FAILED)
