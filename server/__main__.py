"""The demo server: ``python -m shotx.server`` (or ``shotx-demo``).

The seed's demo in Python: token auth (``valid``, or any token starting with
``user-``), a ``test_route`` handler, and a publisher that sends a numbered
``notification`` to ``user-room`` every ``--interval`` seconds. When ``--web``
names a built bundle (``python3 build.py bundle`` makes ``web/dist``), its
files are served at ``/`` next to Socket.IO at ``/shotx/``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from .limits import Limits
from .replies import STORE_TIMEOUT
from .runtime import event_loop, tune_collector
from .server import SxServer, open_store
from .socket import SxSocket
from .workers import LISTEN_BACKLOG, bind, run_workers

DEMO_ROOM = "user-room"


# The demo app's SxServer, for code that gets the app (tests, embedding).
SX = web.AppKey("sx", SxServer)


def build_app(store: Any, web_dir: Path | None, interval: float, private_rooms: bool = False,
              limits: Limits | None = None, print_handled: bool = False,
              store_timeout: float = STORE_TIMEOUT) -> web.Application:
    app = web.Application()
    sx = SxServer(app, store=store, limits=limits, store_timeout=store_timeout)
    if private_rooms:
        sx.authorize_join(own_user_rooms_only)

    @sx.auth
    async def check(token: str, socket: SxSocket) -> dict[str, Any] | None:
        if token == "valid" or token.startswith("user-"):
            return {"user_id": "user123" if token == "valid" else token}
        return None

    handled: list[Any] = []

    @sx.on_message("test_route")
    async def test_route(data: Any, socket: SxSocket) -> dict[str, Any]:
        handled.append(data)
        del handled[:-10_000]
        if print_handled:  # a test that SIGKILLs the server reads what it ran from here
            print("HANDLED " + json.dumps(data, default=_describe_bytes), flush=True)
        return {"status": "ok", "data": data, "auth": socket.auth}

    @sx.on_message("publish")
    async def publish(data: Any, socket: SxSocket) -> dict[str, Any]:
        """Lets a page (or a test) put a message into the demo room."""
        return await sx.to(DEMO_ROOM).send("notification", data)

    async def demo_handled(request: web.Request) -> web.Response:
        """What test_route ran with, in order: lets a test prove 'exactly once'
        (bytes shown as ``{"bytes": length, "sha256": hex}``)."""
        return web.json_response(handled, dumps=functools.partial(json.dumps, default=_describe_bytes))

    async def demo_publish_file(request: web.Request) -> web.Response:
        """``POST /demo/publish_file?room=r`` with any body: a ``file`` message ``{name, file}`` whose
        ``file`` is the body's bytes (sent as Socket.IO binary)."""
        data = {"name": request.query.get("name", "upload.bin"), "file": await request.read()}
        return web.json_response(await sx.to(request.query.get("room", DEMO_ROOM)).send("file", data))

    async def demo_publish(request: web.Request) -> web.Response:
        """Publish to a room over plain HTTP: ``POST /demo/publish?room=r`` with a JSON body."""
        room = request.query.get("room", DEMO_ROOM)
        try:
            return web.json_response(await sx.to(room).send("notification", await request.json()))
        except (ValueError, TypeError) as error:  # no JSON body, NaN, an empty room name
            return web.json_response({"error": f"cannot publish: {error}"}, status=400)

    app.router.add_get("/demo/handled", demo_handled)
    app.router.add_post("/demo/publish", demo_publish)
    app.router.add_post("/demo/publish_file", demo_publish_file)
    if interval > 0:
        app.cleanup_ctx.append(_publisher(sx, interval))
    if web_dir is not None and web_dir.is_dir():
        async def index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(web_dir / "index.html")

        app.router.add_get("/", index)
        app.router.add_static("/", web_dir, show_index=False, follow_symlinks=True)
    app[SX] = sx
    return app


def _describe_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def own_user_rooms_only(room: str, socket: SxSocket, since: int | None) -> bool:
    """The example policy of ``--private-rooms``: a room ``user-<id>`` is only for
    the user whose ``user_id`` is ``<id>`` (token ``user-42`` is user ``user-42``,
    so its room is ``user-user-42``); the demo room and every other room stay open."""
    if room == DEMO_ROOM or not room.startswith("user-"):
        return True
    return room == f"user-{socket.auth.get('user_id')}"


def _publisher(sx: SxServer, interval: float) -> Any:
    async def run(app: web.Application) -> Any:
        async def loop() -> None:
            count = 0
            while True:
                await asyncio.sleep(interval)
                count += 1
                await sx.to(DEMO_ROOM).send("notification", {"message": "Hello from server!", "n": count})

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return run


def demo_worker_app(store: str, prefix: str, web_dir: Path | None, interval: float, private_rooms: bool,
                    limits: Limits, print_handled: bool, worker: int) -> web.Application:
    """The demo app of one ``--workers`` process: only worker 0 runs the publisher,
    so the room gets one numbered notification per interval, not one per worker."""
    return build_app(open_store(store, redis_prefix=prefix), web_dir, interval if worker == 0 else 0,
                     private_rooms, limits, print_handled)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shotx.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    parser.add_argument("--store", default="shotx-demo.sqlite3",
                        help="SQLite file, 'memory', or a redis:// URL (several processes)")
    parser.add_argument("--prefix", default="shotx", help="key prefix in Redis (with a redis:// store)")
    parser.add_argument("--web", type=Path, default=Path("web/dist"), help="built web bundle to serve")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between demo notifications (0: off)")
    parser.add_argument("--private-rooms", action="store_true",
                        help="refuse a room user-<id> to everyone but user <id> (the demo room stays open)")
    parser.add_argument("--messages-per-second", type=float, default=Limits.messages_per_second,
                        help="per-connection rate limit (answered 2007 past it)")
    parser.add_argument("--message-burst", type=int, default=Limits.message_burst, help="with --messages-per-second")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes serving one port (more than 1 needs a redis:// store)")
    parser.add_argument("--print-handled", action="store_true",
                        help="print a line 'HANDLED <data>' for every test_route run (for tests that kill the server)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    limits = Limits(messages_per_second=args.messages_per_second, message_burst=args.message_burst)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    sock = bind(args.host, args.port)  # accepts (queues) connections from the moment the line is printed
    host, port = sock.getsockname()[:2]
    if args.workers > 1:
        # Under ``python -m`` this module is ``__main__``, which multiprocessing's spawn does not
        # re-import in a worker; the factory must name the module by its importable name.
        importable = importlib.import_module("shotx.server.__main__")
        factory = functools.partial(importable.demo_worker_app, args.store, args.prefix, args.web, args.interval,
                                    args.private_rooms, limits, args.print_handled)
        sys.exit(run_workers(factory, workers=args.workers, sock=sock, on_ready=lambda port: print(
            f"Shotx demo server listening on http://{host}:{port} ({args.workers} workers)", flush=True)))
    app = build_app(open_store(args.store, redis_prefix=args.prefix), args.web, args.interval, args.private_rooms,
                    limits, args.print_handled)
    loop = event_loop()
    tune_collector()  # the application is built: what is alive now stays
    logging.getLogger("shotx.server").info("event loop: %s", type(loop).__module__)
    print(f"Shotx demo server listening on http://{host}:{port}", flush=True)
    web.run_app(app, sock=sock, print=None, handle_signals=True, loop=loop, backlog=LISTEN_BACKLOG)


if __name__ == "__main__":
    main()
