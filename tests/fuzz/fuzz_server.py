"""The fuzzers' server side: a real SxServer on a loop of its own, and a log of library crashes.

The server tests run their hypothesis examples as plain functions that hand
coroutines to a real SxServer's event loop, running in a thread of its own
(:class:`LoopThread`): hypothesis drives synchronous tests best, and one
loop for the whole module keeps one server and one connection across
thousands of examples.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from shotx.server import SxServer

T = TypeVar("T")

SCALE = float(os.environ.get("SHOTX_FUZZ_SCALE", "1"))
# Inputs each test checked (an example may hold several: a batch of frames,
# messages or replies, or a state machine's steps); conftest prints them.
INPUTS: Counter[str] = Counter()


def examples(count: int) -> int:
    """A test's example count, times ``SHOTX_FUZZ_SCALE``."""
    return max(1, int(count * SCALE))


class LoopThread:
    """An asyncio loop in a daemon thread; :meth:`run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self._cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


    @staticmethod
    async def _cancel_the_rest() -> None:
        """Tasks the server left (Engine.IO's ping loops) end before the loop closes."""
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# Loggers whose ERROR records mean an input escaped the library's handling
# (a traceback inside python-socketio, Engine.IO or aiohttp, a task that died).
CRASH_LOGGERS = ("engineio", "socketio", "aiohttp", "asyncio")


def _known(record: logging.LogRecord) -> bool:
    """python-socketio's known race, reported and not ours to fix: a CONNECT
    frame that arrives while the server closes that connection (after a frame
    it refused) finds the connection's environ gone (KeyError in _handle_connect)."""
    if record.exc_info is None or not isinstance(record.exc_info[1], KeyError):
        return False
    tb = record.exc_info[2]
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_name == "_handle_connect"


class CrashLog(logging.Handler):
    """Collects ERROR records of :data:`CRASH_LOGGERS` while installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CRASH_LOGGERS and not _known(record):
            self.records.append(record)

    def take(self) -> list[str]:
        taken, self.records = self.records, []
        return [f"{r.name}: {r.getMessage()[:300]} {r.exc_info[1]!r}" if r.exc_info else
                f"{r.name}: {r.getMessage()[:300]}" for r in taken]


@dataclass
class FuzzServer:
    """A real SxServer on a loopback port, with the routes the fuzzers aim at."""

    sx: SxServer
    runner: web.AppRunner
    url: str
    handled: list[Any] = field(default_factory=list)


# Small, so frames on both sides of the limit are cheap to build.
MAX_MESSAGE_SIZE = 64 * 1024


async def start_fuzz_server(store: Any) -> FuzzServer:
    app = web.Application()
    sx = SxServer(app, store=store, max_message_size=MAX_MESSAGE_SIZE, retention_interval=0)
    server = FuzzServer(sx, web.AppRunner(app, handle_signals=False), "")
    sx.set_auth_handler(lambda token, socket: {"user": "fuzz"} if token == "valid" else None)

    def echo(data: Any, socket: Any) -> Any:
        server.handled.append(data)
        return data

    def fail(data: Any, socket: Any) -> Any:
        raise ValueError("refused by the fuzz route")

    sx.on_message("echo", echo).on_message("fail", fail)
    sx.on_message("meta", lambda data, socket, meta: meta)
    await server.runner.setup()
    site = web.TCPSite(server.runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{server.runner.addresses[0][1]}"
    return server


