"""Our layer's own CPU per request, in-process, with no network in the way.

Why: on a shared 2-core machine the end-to-end figures move by 10-25% from
one run to the next, more than the few microseconds our layer adds to
python-socketio's ~100 µs per ack. Calling the server's ``message`` event
handler directly (what python-socketio calls once it has decoded a packet),
then encoding its ack packet as python-socketio does next, measures just what
sits between python-socketio and the user's handler — validation, routing,
the idempotency layer and its store writes, and the reply's encoding — with a
spread of a few percent.

Each request runs in its own event-loop turn (``await asyncio.sleep(0)``
first), as it does when it arrives from a socket, so the SQLite store's group
commit groups exactly what it would group in a server with that many
clients sending at once.

    python bench/layer_cost.py --requests 20000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from shotx.client import protocol
from shotx.server import SxServer, SxSocket
from shotx.server.limits import ConnectionUse, Limits

AUTH = {"user_id": "bench"}
Handler = Callable[[str, Any], Awaitable[Any]]
Acked = tuple[Handler, type]  # the message handler and the packet class that encodes its ack


async def bare_handler(sid: str, message: Any = None) -> dict[str, Any]:
    """The bare python-socketio server's handler from ``servers.py``: the floor."""
    data = message.get("data") if isinstance(message, dict) else None
    return {"meta": {"success": True}, "data": {"status": "ok", "data": data, "auth": AUTH}}


async def shotx_handler(store: str, clients: int) -> tuple[Handler, SxServer]:
    """SxServer's ``message`` handler with ``clients`` authenticated sockets registered.

    Bench-only use of private names (``_on_message``, ``sockets``): they are
    exactly the layer under measurement.
    """
    # In-process, one client sends far faster than the default 5,000 messages a second a
    # connection may: the bucket still runs (it is part of the layer), with room to spare.
    sx = SxServer(web.Application(), store=store, retention_interval=0,
                  limits=Limits(messages_per_second=1e9))
    await sx.open()

    @sx.on_message("test_route")
    async def test_route(data: Any, socket: SxSocket) -> dict[str, Any]:
        return {"status": "ok", "data": data, "auth": socket.auth}

    for n in range(clients):
        sid = f"client-{n}"
        sx.sockets[sid] = socket = SxSocket(sid, {}, {"token": "valid"}, sx.sio, dict(AUTH))
        socket.use = ConnectionUse(sx.limits)  # as SxServer's connect gives it
    return sx._on_message, sx


async def drive(acked: Acked, clients: int, requests: int) -> None:
    """``clients`` senders, each awaiting its ack frame before sending the next request."""
    handler, packet_class = acked

    async def client(sid: str, count: int) -> None:
        for n in range(count):
            await asyncio.sleep(0)  # a new request arrives on a later loop turn
            reply = await handler(sid, protocol.request("test_route", {"n": n, "text": "hello"}))
            frame = packet_class(socketio.packet.ACK, data=[reply], id=n).encode()
            if '"success":true' not in frame:
                raise RuntimeError(f"request failed: {frame}")
    await asyncio.gather(*(client(f"client-{n}", requests // clients) for n in range(clients)))


async def measure(kind: str, clients: int, requests: int, folder: Path) -> dict[str, Any]:
    """CPU µs per request of one handler kind, after a warm-up of 10% of the requests."""
    sx = None
    if kind == "bare":
        acked: Acked = (bare_handler, socketio.packet.Packet)
    else:
        store = "memory" if kind == "memory" else str(folder / f"layer-{clients}.sqlite3")
        handler, sx = await shotx_handler(store, clients)
        acked = (handler, sx.sio.packet_class)
    await drive(acked, clients, max(clients, requests // 10))
    cpu = time.process_time()
    await drive(acked, clients, requests)
    cpu = time.process_time() - cpu
    if sx is not None:
        await sx.close()
    return {"handler": kind, "clients": clients, "requests": requests, "cpu_us": cpu / requests * 1e6}


async def main_async(requests: int, client_counts: list[int]) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="shotx-layer-") as folder:
        for clients in client_counts:
            for kind in ("bare", "memory", "sqlite"):
                results.append(await measure(kind, clients, requests, Path(folder)))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    for row in asyncio.run(main_async(args.requests, args.clients)):
        print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    main()
