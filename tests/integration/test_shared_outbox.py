"""Two clients on one outbox (two tabs on one IndexedDB, two processes on one SQLite file)
against a real server that restarts: a message one of them got answered is never run again
when the other, which made it, sends it later."""

from __future__ import annotations

import asyncio
from typing import Any


async def test_a_send_the_other_client_got_answered_is_answered_again_not_run_after_a_restart(
        tmp_path, start_server, make_client):
    """Client A makes a message while offline; client B, on the same outbox, flushes it and
    gets its answer. A still holds the message (it made it, so it keeps it until its own
    answer) and sends it once it connects. It must go as a resend, so that the server looks
    its reply up in the store: after a restart (or on another worker) its memory of replies
    is empty, and a first send would run the handler a second time."""
    runs: list[Any] = []

    def setup(sx):
        sx.on_message("count", lambda data, socket: runs.append(data) or {"n": data})

    server_file, outbox = str(tmp_path / "server.sqlite3"), str(tmp_path / "outbox.sqlite3")
    first = await start_server(setup, store=server_file)
    a = make_client(first.url, store=outbox)
    a_reply = await a.queue("count", 1)  # stored; A is not connected
    b = make_client(first.url, store=outbox)
    answered = asyncio.get_running_loop().create_future()
    b.on_reply("count", lambda reply: answered.done() or answered.set_result(reply))
    await b.connect("valid")
    assert (await asyncio.wait_for(answered, 10)).result == {"n": 1}  # B's flush sent A's message
    await b.close()  # and took it out of the outbox
    assert runs == [1]
    await first.stop()  # a restart: the server's memory of replies is gone, its store is not
    second = await start_server(setup, store=server_file, port=first.port)
    await a.connect("valid")
    assert await asyncio.wait_for(a_reply, 10) == {"n": 1}
    assert runs == [1]
    await second.stop()
