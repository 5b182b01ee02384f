"""Fallback load generator on python-socketio's AsyncClient (no Node needed).

Same command line, stdout lines and JSON as ``loadgen.mjs``, so ``run.py``
can use either. Why it is only the fallback: a python-socketio client costs
about as much CPU per round trip as the server it measures, so on a 2-core
machine it saturates first and compresses every ratio towards 1.

    python bench/loadgen.py ack --url http://127.0.0.1:PORT --clients 10 --warmup 1 --duration 3
    python bench/loadgen.py member --url ... --room live --expect 20000 [--rooms N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import Any

import socketio

from shotx.client import protocol


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["ack", "member"])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--path", default="/shotx/")
    parser.add_argument("--token", default="valid")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--room", default="live")
    parser.add_argument("--rooms", type=int, default=1, help="member of ROOM-0 .. ROOM-<N-1> instead of ROOM")
    parser.add_argument("--expect", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    return parser.parse_args(argv)


async def connect(args: argparse.Namespace) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(args.url, socketio_path=args.path.strip("/"), auth={"token": args.token},
                         transports=["websocket"], wait_timeout=args.timeout)
    return client


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def client_loop(client: socketio.AsyncClient, start: float, end: float,
                      latencies: list[float], errors: list[int]) -> None:
    """Send, await the ack, repeat until the deadline."""
    n = 0
    while time.perf_counter() < end:
        started = time.perf_counter()
        reply = await client.call("message", protocol.request("test_route", {"n": n, "text": "hello"}), timeout=30)
        done = time.perf_counter()
        n += 1
        if not (isinstance(reply, dict) and reply.get("meta", {}).get("success") is True):
            errors.append(1)
        if start <= done <= end:
            latencies.append((done - started) * 1000)


async def mark(at: float, word: str, cpu: list[float]) -> None:
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    cpu.append(cpu_seconds())
    print(word, flush=True)


def percentile(ordered: list[float], p: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else None


async def run_ack(args: argparse.Namespace) -> dict[str, Any]:
    clients = await asyncio.gather(*(connect(args) for _ in range(args.clients)))
    now = time.perf_counter()
    start, end = now + args.warmup, now + args.warmup + args.duration
    latencies: list[float] = []
    errors: list[int] = []
    cpu: list[float] = []
    await asyncio.gather(mark(start, "MEASURE_START", cpu), mark(end, "MEASURE_END", cpu),
                         *(client_loop(c, start, end, latencies, errors) for c in clients))
    await asyncio.gather(*(c.disconnect() for c in clients))
    latencies.sort()
    return {"clients": args.clients, "window_s": args.duration, "acks": len(latencies), "errors": len(errors),
            "acks_per_s": len(latencies) / args.duration, "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99), "loadgen_cpu_s": cpu[1] - cpu[0]}


async def run_member(args: argparse.Namespace) -> None:
    client = await connect(args)
    rooms = {args.room} if args.rooms <= 1 else {f"{args.room}-{i}" for i in range(args.rooms)}
    received = 0
    finished = asyncio.Event()

    @client.on("message")
    async def on_message(message: Any) -> None:
        nonlocal received
        if isinstance(message, dict) and message.get("meta", {}).get("room") in rooms:
            received += 1
            if received >= args.expect:
                finished.set()

    for room in sorted(rooms):
        reply = await client.call("message", protocol.request(protocol.JOIN, {"room": room}), timeout=30)
        if not reply.get("meta", {}).get("success"):
            raise RuntimeError(f"join failed: {reply}")
    print("JOINED", flush=True)
    try:
        await asyncio.wait_for(finished.wait(), args.timeout)
        print(f"DONE {received}", flush=True)
    finally:
        await client.disconnect()


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.mode == "ack":
        print(json.dumps(asyncio.run(run_ack(args))), flush=True)
    else:
        asyncio.run(run_member(args))


if __name__ == "__main__":
    main()
