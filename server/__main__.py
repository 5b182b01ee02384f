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
import logging
import socket as pysocket
from pathlib import Path
from typing import Any

from aiohttp import web

from .server import SxServer, open_store
from .socket import SxSocket

DEMO_ROOM = "user-room"


# The demo app's SxServer, for code that gets the app (tests, embedding).
SX = web.AppKey("sx", SxServer)


def build_app(store: Any, web_dir: Path | None, interval: float, private_rooms: bool = False) -> web.Application:
    app = web.Application()
    sx = SxServer(app, store=store)
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
        return {"status": "ok", "data": data, "auth": socket.auth}

    @sx.on_message("publish")
    async def publish(data: Any, socket: SxSocket) -> dict[str, Any]:
        """Lets a page (or a test) put a message into the demo room."""
        return await sx.to(DEMO_ROOM).send("notification", data)

    async def demo_handled(request: web.Request) -> web.Response:
        """What test_route ran with, in order: lets a test prove 'exactly once'."""
        return web.json_response(handled)

    async def demo_publish(request: web.Request) -> web.Response:
        """Publish to a room over plain HTTP: ``POST /demo/publish?room=r`` with a JSON body."""
        room = request.query.get("room", DEMO_ROOM)
        try:
            return web.json_response(await sx.to(room).send("notification", await request.json()))
        except (ValueError, TypeError) as error:  # no JSON body, NaN, an empty room name
            return web.json_response({"error": f"cannot publish: {error}"}, status=400)

    app.router.add_get("/demo/handled", demo_handled)
    app.router.add_post("/demo/publish", demo_publish)
    if interval > 0:
        app.cleanup_ctx.append(_publisher(sx, interval))
    if web_dir is not None and web_dir.is_dir():
        async def index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(web_dir / "index.html")

        app.router.add_get("/", index)
        app.router.add_static("/", web_dir, show_index=False, follow_symlinks=True)
    app[SX] = sx
    return app


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


def _bind(host: str, port: int) -> pysocket.socket:
    sock = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # accept (queue) connections from the moment the line is printed
    return sock


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
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    app = build_app(open_store(args.store, redis_prefix=args.prefix), args.web, args.interval, args.private_rooms)
    loop = event_loop()
    logging.getLogger("shotx.server").info("event loop: %s", type(loop).__module__)
    print(f"Shotx demo server listening on http://{host}:{port}", flush=True)
    web.run_app(app, sock=sock, print=None, handle_signals=True, loop=loop)


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (``pip install shotx[fast]``), else asyncio's.

    Why: the server spends much of each message in the event loop itself
    (callbacks, socket reads and writes), which uvloop runs in C.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    main()
