"""A server for tests to SIGKILL: ``python crash_server.py STORE RUNS [--block] [--at-most-once]``.

One route, ``work``: it appends the message id to the file RUNS (one line
per run, written before anything else, so a test can wait for a run on the
file and it survives the kill), then, with ``--block`` and ``data.block``,
never returns (a test kills the server while it runs); otherwise it
returns how many times it ran for that id. The SQLite file STORE is the
server's store. Prints ``listening on URL`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from aiohttp import web

from shotx.server import SqliteStore, SxServer


def record_run(runs_path: str, message_id: str) -> int:
    """Append one run; return how many runs of ``message_id`` the file now holds."""
    fd = os.open(runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (message_id + "\n").encode())
    finally:
        os.close(fd)
    with open(runs_path) as runs:
        return sum(line.rstrip("\n") == message_id for line in runs)


async def serve(args: argparse.Namespace) -> None:
    app = web.Application()
    sx = SxServer(app, store=SqliteStore(args.store), retention_interval=0, at_most_once=args.at_most_once)

    async def work(data: Any, socket: Any, meta: dict[str, Any]) -> dict[str, Any]:
        runs = record_run(args.runs, meta["id"])
        if args.block and isinstance(data, dict) and data.get("block"):
            await asyncio.Event().wait()  # killed in here
        return {"id": meta["id"], "runs": runs}

    sx.on_message("work", work)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("runs")
    parser.add_argument("--block", action="store_true")
    parser.add_argument("--at-most-once", action="store_true")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
