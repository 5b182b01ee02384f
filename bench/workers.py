#!/usr/bin/env python3
"""Cores adding up: ``python3 bench/workers.py [--rounds 3] [--clients 100]``.

Ack round trips (``loadgen.mjs ack``, the demo's echo route, every reply
remembered) against one process on SQLite, one process on Redis, and
``run_workers`` with 2 processes on Redis, alternating in one run with the
order rotating per round; prints a Markdown table of medians. Server CPU is
every process of the server (the primary and its workers); Redis's own CPU
(``INFO cpu``, the whole Redis: other users of a shared Redis count too) is
given apart. ``python3 bench/workers.py serve --workers 2 --redis URL`` is
the server it starts (prints ``READY <port>``).

Why three servers: the 2-worker figure against one process on Redis shows
what a second process adds; against SQLite, what a user moving from the
default store to several processes gets.
"""

from __future__ import annotations

import argparse
import functools
import os
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import servers  # noqa: E402
from processes import Children, cpu_seconds, read_line  # noqa: E402
from run import loadgen_command  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"


def worker_app(redis_url: str, prefix: str, worker: int) -> Any:
    """The benchmark's Shotx server (``servers.build_shotx``) in one worker."""
    from shotx.server import RedisStore
    return servers.build_shotx(RedisStore(redis_url, prefix=prefix))


def serve(args: argparse.Namespace) -> int:
    from shotx.server.workers import run_workers
    factory = functools.partial(worker_app, args.redis, args.prefix)
    return run_workers(factory, workers=args.workers, port=0, shutdown_timeout=2.0,
                       on_ready=lambda port: print(f"READY {port}", flush=True))


def process_tree(pid: int) -> list[int]:
    found, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = [int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        except OSError:
            continue
        found += children
        todo += children
    return found


def tree_cpu(pid: int) -> float:
    total = 0.0
    for each in process_tree(pid):
        try:
            total += cpu_seconds(each)
        except OSError:
            pass
    return total


def redis_cpu(url: str) -> float:
    import redis
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


def start(children: Children, name: str, folder: Path, redis_url: str) -> dict[str, Any]:
    prefix = f"shotx-bench-workers-{os.getpid()}"
    if name == "1 process, SQLite":
        command = [sys.executable, str(BENCH / "servers.py"), "shotx", "--store", "sqlite",
                   "--db", str(folder / "bench.sqlite3")]
    elif name == "1 process, Redis":
        command = [sys.executable, str(BENCH / "servers.py"), "shotx", "--store", "redis", "--redis", redis_url]
    else:
        command = [sys.executable, str(BENCH / "workers.py"), "serve", "--workers", "2", "--redis", redis_url,
                   "--prefix", prefix]
    process = children.start(command)
    line = read_line(process, name)
    while line.startswith("Shotx worker "):  # run_workers says each worker is ready, then READY
        line = read_line(process, name)
    if not line.startswith("READY "):
        raise RuntimeError(f"{name} said {line!r}")
    return {"name": name, "process": process, "url": f"http://127.0.0.1:{line.split()[1]}", "prefix": prefix}


def measure(children: Children, loadgen: list[str], server: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    command = [*loadgen, "ack", "--url", server["url"], "--clients", str(args.clients),
               "--warmup", str(args.warmup), "--duration", str(args.duration)]
    process = children.start(command)
    pid = server["process"].pid
    try:
        if read_line(process, "load generator") != "MEASURE_START":
            raise RuntimeError("load generator did not start measuring")
        cpu, redis_before = tree_cpu(pid), redis_cpu(args.redis)
        if read_line(process, "load generator") != "MEASURE_END":
            raise RuntimeError("load generator did not stop measuring")
        cpu, redis_used = tree_cpu(pid) - cpu, redis_cpu(args.redis) - redis_before
        result = json.loads(read_line(process, "load generator"))
    finally:
        children.stop(process)
    acks = result["acks"] or 1
    result.update(server=server["name"], cpu_us_per_ack=cpu / acks * 1e6, redis_us_per_ack=redis_used / acks * 1e6)
    return result


def forget_keys(url: str, prefix: str) -> None:
    import redis
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


NAMES = ("1 process, SQLite", "1 process, Redis", "2 workers, Redis")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    children, loadgen, rows = Children(), loadgen_command(), []
    try:
        for round_no in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="shotx-bench-workers-") as folder:
                shift = round_no % len(NAMES)
                for name in NAMES[shift:] + NAMES[:shift]:
                    server = start(children, name, Path(folder), args.redis)
                    try:
                        row = measure(children, loadgen, server, args)
                    finally:
                        children.stop(server["process"])
                        forget_keys(args.redis, server["prefix"])
                    row["round"] = round_no
                    rows.append(row)
                    print(f"    round {round_no + 1} {name:>18}: {row['acks_per_s']:8.0f} acks/s, "
                          f"{row['cpu_us_per_ack']:6.1f} µs server CPU/ack", flush=True)
    finally:
        children.stop_all()
    return rows


def table(rows: list[dict[str, Any]], clients: int) -> str:
    base = {r["round"]: r["acks_per_s"] for r in rows if r["server"] == NAMES[0]}
    lines = [f"| server ({clients} clients) | round trips/s | vs 1 process SQLite (same round) | p50 / p99 ms "
             "| server CPU µs/ack | Redis CPU µs/ack |", "|---|---:|---:|---|---:|---:|"]
    for name in NAMES:
        mine = [r for r in rows if r["server"] == name]
        med = lambda key: statistics.median(r[key] for r in mine)  # noqa: E731
        ratio = statistics.median(r["acks_per_s"] / base[r["round"]] for r in mine)
        redis_part = "–" if "SQLite" in name else f"{med('redis_us_per_ack'):.0f}"
        lines.append(f"| {name} | {med('acks_per_s'):,.0f} | {ratio:.2f}× | {med('p50_ms'):.2f} / "
                     f"{med('p99_ms'):.2f} | {med('cpu_us_per_ack'):.0f} | {redis_part} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "serve"])
    parser.add_argument("--redis", default=REDIS)
    parser.add_argument("--prefix", default="shotx-bench-workers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if args.mode == "serve":
        sys.exit(serve(args))
    rows = run(args)
    print()
    print(table(rows, args.clients))


if __name__ == "__main__":
    main()
