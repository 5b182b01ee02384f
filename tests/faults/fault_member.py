"""A room member in a process of its own, so a test can SIGKILL it mid-handler and restart it.

Its handler writes ``{"offset", "id"}`` with one ``os.write`` to ``--out``
(O_APPEND) and returns; the client stores the offset right after. A kill
between the two is the at-least-once window the README states for room
handlers: the restarted member, recreated from its SQLite store, handles
that message again. Prints ``ready <head>`` once joined (the head of its join
answer), then runs until killed.

``python tests/faults/fault_member.py --url URL --store m.sqlite3 --out m.jsonl --room r``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from shotx.client import SxClient


async def run(url: str, store: str, out: str, room: str) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    client = SxClient(url, store=store, reconnection_delay=0.05, reconnection_delay_max=0.3)

    def handle(data: Any, meta: dict[str, Any]) -> None:
        if meta.get("room") == room:
            os.write(fd, (json.dumps({"offset": meta["offset"], "id": meta["id"]}) + "\n").encode())

    client.on_message("notification", handle)
    await client.connect("valid", timeout=30)
    answer = await client.join(room, timeout=30)
    print(f"ready {answer['head']}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--url", "--store", "--out", "--room"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.store, args.out, args.room))


if __name__ == "__main__":
    main()
