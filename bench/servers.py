"""The servers the benchmark measures, each run in its own process.

``python bench/servers.py shotx --store sqlite --db /tmp/x.sqlite3``
``python bench/servers.py shotx --store memory``
``python bench/servers.py shotx --store redis --redis redis://127.0.0.1:6379/0``
``python bench/servers.py bare``

Both answer the same request the same way, so the only difference the load
generator sees is our layer: ``shotx`` is :class:`SxServer` with the demo's
``test_route`` echo handler; ``bare`` is a plain python-socketio
``AsyncServer`` on aiohttp whose ``message`` handler builds the identical ack
by hand (no routing, no idempotency, no store). Each binds 127.0.0.1 on a
free port and prints ``READY <port>`` once it accepts connections, so the
runner never sleeps on a guess. ``--profile FILE`` writes cProfile stats when
the process is stopped with SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import socket as pysocket
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

PATH = "shotx"
VALID_TOKEN = "valid"
AUTH = {"user_id": "bench"}


def build_shotx(store: Any) -> web.Application:
    """Our server as a user writes it: auth handler plus one echo route."""
    from shotx.server import SxServer

    app = web.Application()
    sx = SxServer(app, store=store)

    @sx.auth
    async def check(token: str, socket: Any) -> dict[str, Any] | None:
        return dict(AUTH) if token == VALID_TOKEN else None

    @sx.on_message("test_route")
    async def test_route(data: Any, socket: Any) -> dict[str, Any]:
        return {"status": "ok", "data": data, "auth": socket.auth}

    return app


def build_bare() -> web.Application:
    """Bare python-socketio: the least a Shotx-shaped echo can cost."""
    app = web.Application()
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*",
                               logger=False, engineio_logger=False)
    sio.attach(app, socketio_path=PATH)
    auths: dict[str, Any] = {}

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if not isinstance(auth, dict) or auth.get("token") != VALID_TOKEN:
            raise socketio.exceptions.ConnectionRefusedError("AUTH_FAIL")
        auths[sid] = dict(AUTH)
        sio.start_background_task(sio.emit, "auth_success", auths[sid], to=sid)

    @sio.event
    async def disconnect(sid: str, reason: Any = None) -> None:
        auths.pop(sid, None)

    @sio.on("message")
    async def message(sid: str, msg: Any = None) -> dict[str, Any]:
        data = msg.get("data") if isinstance(msg, dict) else None
        return {"meta": {"success": True}, "data": {"status": "ok", "data": data, "auth": auths.get(sid)}}

    return app


def bind() -> pysocket.socket:
    """A listening socket on a free loopback port, ready before READY is printed."""
    sock = pysocket.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["shotx", "bare"])
    parser.add_argument("--store", choices=["sqlite", "memory", "redis"], default="sqlite")
    parser.add_argument("--db", type=Path, default=Path("bench-server.sqlite3"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for --store redis")
    parser.add_argument("--profile", type=Path, help="write cProfile stats here on exit")
    args = parser.parse_args(argv)
    redis_store = None
    if args.store == "redis":  # keys under a prefix of this process's own, deleted on exit
        from shotx.server import RedisStore
        redis_store = RedisStore(args.redis, prefix=f"shotx-bench-{os.getpid()}")
    store = redis_store or ("memory" if args.store == "memory" else str(args.db))
    app = build_shotx(store) if args.kind == "shotx" else build_bare()
    sock = bind()
    profiler = cProfile.Profile() if args.profile else None
    print(f"READY {sock.getsockname()[1]}", flush=True)
    if profiler is not None:
        profiler.enable()
    try:
        web.run_app(app, sock=sock, print=None, handle_signals=True, access_log=None)
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
        if redis_store is not None:
            delete_keys(args.redis, redis_store.prefix)


def delete_keys(url: str, prefix: str) -> None:
    """Leave the shared Redis as it was: drop every key under ``prefix``."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


if __name__ == "__main__":
    main()
