"""The server the fault tests run as a subprocess, kill with SIGKILL and restart.

It is the demo server (``shotx.server.__main__.build_app``: token ``valid``
or ``user-*``, ``publish``, ``POST /demo/publish?room=r``) plus two routes
whose every run is written to ``--runs`` with one ``os.write`` on an
``O_APPEND`` file before the handler returns: SIGKILL ends the process, not
the OS, so a line written is a run that happened, and the test can count
runs per message id across kills.

* ``fault_send``: records ``{"id", "c", "n", "inc", "t", "run", "resend"}`` and answers
  ``{"id", "inc", "run"}`` (which incarnation and which of its runs
  answered, so the client side knows which run its ack came from);
* ``fault_refuse``: records a refusal and raises, so the sender is told the
  send failed and nothing was done.

``python tests/faults/fault_server.py --port 0 --store s.sqlite3 --runs runs.jsonl --incarnation 1``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any

from aiohttp import web

from shotx.server.__main__ import build_app
from shotx.server.workers import LISTEN_BACKLOG, bind
from shotx.server.server import open_store
from shotx.server.socket import SxSocket


def awaits_of(task: asyncio.Task[Any]) -> str:
    """``file:line:function > ...`` from the task's coroutine down to what its innermost one awaits."""
    parts, awaited = [], task.get_coro()
    for _ in range(64):
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        parts.append(f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}:{frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    if awaited is not None and not parts[-1:] == [repr(awaited)]:
        parts.append(f"awaits {type(awaited).__name__}" + (f" {awaited.get_name()}" if isinstance(awaited, asyncio.Task) else ""))
    return " > ".join(parts) or f"{task.get_name()} (no frames)"


def add_fault_routes(app: web.Application, runs_path: str, incarnation: int) -> None:
    from shotx.server.__main__ import SX

    sx = app[SX]
    runs_fd = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    count = [0]

    def record(line: dict[str, Any]) -> None:
        os.write(runs_fd, (json.dumps(line) + "\n").encode())

    @sx.on_message("fault_send")
    async def fault_send(data: Any, socket: SxSocket, meta: dict[str, Any]) -> dict[str, Any]:
        count[0] += 1
        record({"id": meta.get("id"), "c": data.get("c"), "n": data.get("n"), "inc": incarnation,
                "t": time.time(), "run": count[0], "resend": bool(meta.get("resend"))})
        return {"id": meta.get("id"), "inc": incarnation, "run": count[0]}

    @sx.on_message("fault_refuse")
    async def fault_refuse(data: Any, socket: SxSocket, meta: dict[str, Any]) -> None:
        count[0] += 1
        record({"refused": meta.get("id"), "c": data.get("c"), "n": data.get("n"), "inc": incarnation,
                "t": time.time(), "run": count[0], "resend": bool(meta.get("resend"))})
        # which run the sender was told of, as fault_send's reply says it
        raise ValueError(f"refused on purpose: nothing was done (inc={incarnation} run={count[0]})")

    async def tasks(request: web.Request) -> web.Response:
        """``GET /fault/tasks``: every asyncio task of the server and where it waits, followed
        down its chain of awaits (``get_stack`` shows a suspended task's outermost frame only):
        what a test prints when something it sent is never answered."""
        return web.Response(text="\n".join(sorted(awaits_of(task) for task in asyncio.all_tasks())))

    app.router.add_get("/fault/tasks", tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--store", required=True)
    parser.add_argument("--prefix", default="shotx")
    parser.add_argument("--runs", required=True)
    parser.add_argument("--incarnation", type=int, default=1)
    parser.add_argument("--store-timeout", type=float, default=None)
    args = parser.parse_args()
    # SHOTX_FAULT_SERVER_LOG=INFO puts every join (sid, since, epoch, replayed) in the server's log
    # file, DEBUG also every live entry; for the shotx loggers only (aiohttp, redis-py stay at WARNING)
    logging.basicConfig(level="WARNING", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("shotx").setLevel(os.environ.get("SHOTX_FAULT_SERVER_LOG", "WARNING"))
    sock = bind("127.0.0.1", args.port)
    app = build_app(open_store(args.store, redis_prefix=args.prefix), None, 0,
                    **({} if args.store_timeout is None else {"store_timeout": args.store_timeout}))
    add_fault_routes(app, args.runs, args.incarnation)
    print(f"fault server listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, print=None, handle_signals=True, backlog=LISTEN_BACKLOG)


if __name__ == "__main__":
    main()
