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
runner never sleeps on a guess. ``shotx`` runs as ``python -m shotx.server``
does (uvloop, ``runtime.tune_collector()``); ``--collector default`` leaves
CPython's collector settings, for a side-by-side look at what the tuning
buys. ``--profile FILE`` writes cProfile stats when
the process is stopped with SIGTERM or SIGINT.

Two bench-only message types, answered alike by both and by the Node
reference (``node_server.mjs``): ``bench_publish {room, count}`` publishes
``count`` room messages at once (for ``shotx``: ``count`` concurrent
``sx.to(room).send`` calls, each appended to the store's log, SQLite by
default, before it is broadcast) and answers once they are out;
``bench_stats`` answers ``{sockets}``, the open Engine.IO connections, so the
memory scenario can wait until every client it closed is gone.
``--trace-memory FILE`` starts ``tracemalloc``; each SIGUSR1 then takes a
snapshot (after a full collection): the first is the baseline, each later
one writes its difference to the baseline to FILE and prints ``SNAPSHOT <n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import signal
import tracemalloc
import uuid
import socket as pysocket
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

PATH = "shotx"
VALID_TOKEN = "valid"
AUTH = {"user_id": "bench"}
PUBLISHED = "Hello from server!"


def build_shotx(store: Any, compression: bool = False) -> web.Application:
    """Our server as a user writes it: auth handler plus one echo route."""
    from shotx.server import SxServer

    app = web.Application()
    sx = SxServer(app, store=store, websocket_compression=True) if compression else SxServer(app, store=store)

    @sx.auth
    async def check(token: str, socket: Any) -> dict[str, Any] | None:
        return dict(AUTH) if token == VALID_TOKEN else None

    @sx.on_message("test_route")
    async def test_route(data: Any, socket: Any) -> dict[str, Any]:
        return {"status": "ok", "data": data, "auth": socket.auth}

    @sx.on_message("bench_publish")
    async def bench_publish(data: Any, socket: Any) -> dict[str, Any]:
        room, count = publish_request(data)
        sent = await asyncio.gather(*(sx.to(room).send("notification", {"message": PUBLISHED, "n": n})
                                      for n in range(count)))
        return {"room": room, "sent": count, "head": sent[-1]["offset"]}

    sx.on_message("bench_stats", lambda data, socket: {"sockets": len(sx.sio.eio.sockets)})
    return app


def publish_request(data: Any) -> tuple[str, int]:
    """``bench_publish``'s room and count (1 unless a positive integer is given)."""
    if not isinstance(data, dict) or not isinstance(data.get("room"), str):
        raise ValueError("bench_publish needs {room, count}")
    count = data.get("count")
    return data["room"], count if isinstance(count, int) and count > 0 else 1


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

    heads: dict[str, int] = {}

    async def join(sid: str, data: Any) -> dict[str, Any]:
        room = data["room"]
        await sio.enter_room(sid, room)
        head = heads.get(room, 0)
        return {"room": room, "since": None, "head": head, "replayed": 0, "missed": 0, "after": head,
                "until": head, "epoch": "bare"}

    async def publish(sid: str, data: Any) -> dict[str, Any]:
        room, count = publish_request(data)
        for n in range(count):
            heads[room] = offset = heads.get(room, 0) + 1
            await sio.emit("message", {"meta": {"type": "notification", "id": str(uuid.uuid4()), "room": room,
                                                "offset": offset}, "data": {"message": PUBLISHED, "n": n}}, room=room)
        return {"room": room, "sent": count, "head": heads[room]}

    routes = {
        "test_route": lambda sid, data: {"status": "ok", "data": data, "auth": auths.get(sid)},
        "sx_join": join,
        "bench_publish": publish,
        "bench_stats": lambda sid, data: {"sockets": len(sio.eio.sockets)},
    }

    @sio.on("message")
    async def message(sid: str, msg: Any = None) -> dict[str, Any]:
        meta = msg.get("meta") if isinstance(msg, dict) else None
        route = routes.get(str(meta.get("type"))) if isinstance(meta, dict) else None
        if route is None:
            return {"meta": {"success": False, "code": 2003, "error": "Unknown message type"}, "data": None}
        result = route(sid, msg.get("data"))
        return {"meta": {"success": True}, "data": await result if asyncio.iscoroutine(result) else result}

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
    parser.add_argument("--compression", action="store_true",
                        help="SxServer(websocket_compression=True): accept the permessage-deflate a client offers "
                             "(declined by default, as Node's engine.io declines it)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop: uvloop (what `python -m shotx.server` runs on when it is installed; "
                             "asyncio's when it is not) or asyncio's")
    parser.add_argument("--collector", choices=["tuned", "default"], default="tuned",
                        help="for shotx: runtime.tune_collector() once the app is built, as `python -m "
                             "shotx.server` does (bare keeps CPython's defaults, as a plain script has them)")
    parser.add_argument("--profile", type=Path, help="write cProfile stats here on exit")
    parser.add_argument("--trace-memory", type=Path, metavar="FILE",
                        help="tracemalloc on; SIGUSR1 snapshots, the later ones diffed to the first into FILE")
    args = parser.parse_args(argv)
    redis_store = None
    if args.store == "redis":  # keys under a prefix of this process's own, deleted on exit
        from shotx.server import RedisStore
        redis_store = RedisStore(args.redis, prefix=f"shotx-bench-{os.getpid()}")
    store = redis_store or ("memory" if args.store == "memory" else str(args.db))
    app = build_shotx(store, compression=args.compression) if args.kind == "shotx" else build_bare()
    if args.trace_memory is not None:
        trace_memory(app, args.trace_memory)
    sock = bind()
    profiler = cProfile.Profile() if args.profile else None
    event_loop, tune_collector = process_settings()
    loop = event_loop() if args.loop == "uvloop" else asyncio.new_event_loop()
    if args.kind == "shotx" and args.collector == "tuned":
        tune_collector()
    print(f"READY {sock.getsockname()[1]} loop={type(loop).__module__.split('.')[0]}", flush=True)
    if profiler is not None:
        profiler.enable()
    try:
        web.run_app(app, sock=sock, print=None, handle_signals=True, access_log=None, loop=loop,
                    backlog=1024)  # as sock.listen above: aiohttp listens again, with 128 by default
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
        if redis_store is not None:
            delete_keys(args.redis, redis_store.prefix)


def process_settings() -> tuple[Any, Any]:
    """The entry point's event loop and collector settings (``shotx.server.runtime``); a
    ``--candidate`` checkout older than that module had only the loop, in ``__main__``."""
    try:
        from shotx.server.runtime import event_loop, tune_collector
    except ImportError:
        from shotx.server.__main__ import event_loop
        return event_loop, lambda: None
    return event_loop, tune_collector


def trace_memory(app: web.Application, report: Path) -> None:
    """Snapshot the Python heap on each SIGUSR1; write what grew since the first snapshot to ``report``.

    Why: RSS says that memory stayed, not whose it is. A diff of two
    snapshots taken after a full collection, grouped by the line that
    allocated (with the caller chain for the largest), names the holder:
    our code, python-socketio, engine.io or aiohttp. RSS is noted before and
    after glibc's ``malloc_trim(0)``: what a trim gives back was freed memory
    the C allocator kept, not live objects (so tracing cannot see it).
    """
    tracemalloc.start(25)
    snapshots: list[tracemalloc.Snapshot] = []
    rss: list[str] = []

    def snapshot() -> None:
        freed = gc.collect()
        snapshots.append(tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]))
        trimmed = rss_after_trim()
        rss.append(f"snapshot {len(snapshots)}: a full collection freed {freed} objects; RSS {trimmed[0]:.1f} MB, "
                   f"{trimmed[1]:.1f} MB after malloc_trim(0); live: {live_objects()}")
        if len(snapshots) > 1:
            report.write_text("\n".join(rss) + "\n" + memory_diff(snapshots[0], snapshots[-1]))
        print(f"SNAPSHOT {len(snapshots)}", flush=True)

    async def install(app: web.Application) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, snapshot)
    app.on_startup.append(install)


def live_objects(packages: tuple[str, ...] = ("shotx", "socketio", "engineio", "aiohttp")) -> str:
    """The most numerous live objects of these packages' classes: a closed connection still held shows here."""
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        kind = type(obj)
        if isinstance(kind.__module__, str) and kind.__module__.startswith(packages):
            name = f"{kind.__module__}.{kind.__qualname__}"
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda item: -item[1])[:8])


def rss_after_trim() -> tuple[float, float]:
    """This process's RSS in MB, then again after glibc returns its free memory to the system."""
    def rss() -> float:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024
    before = rss()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return before, float("nan")
    return before, rss()


def memory_diff(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 25) -> str:
    """What grew between two snapshots: by file, by line, and the caller chains of the largest."""
    lines = [f"traced Python memory: {sum(s.size for s in before.statistics('filename')) / 1e6:.1f} MB "
             f"-> {sum(s.size for s in after.statistics('filename')) / 1e6:.1f} MB", "", "## by file"]
    lines += [str(stat) for stat in after.compare_to(before, "filename")[:top]]
    lines += ["", "## by line"] + [str(stat) for stat in after.compare_to(before, "lineno")[:top]]
    lines += ["", "## largest growth, with callers"]
    for stat in after.compare_to(before, "traceback")[:8]:
        lines += ["", str(stat), *stat.traceback.format(limit=12)]
    return "\n".join(lines) + "\n"


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
