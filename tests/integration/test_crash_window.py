"""A server SIGKILLed around a handler: what runs again (issue 8, defect 10).

Real server processes (``crash_server.py``) on a real SQLite file, killed
with SIGKILL and restarted on the same file; a bare python-socketio client
sends and resends. The guarantee under test:

* an acknowledged message is never run again: its ack left only once its
  reply was committed (before, the commit came up to 50 ms after the ack);
* a message whose handler was running when the server died runs again on
  its resend (the documented default), or, with ``at_most_once``, is
  answered with ``OUTCOME_UNKNOWN`` (2005) and not run again.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from shotx.client import protocol
from shotx.server import RedisStore, SqliteStore
from shotx.server.replies import STARTED, ReplyMemory

SERVER = Path(__file__).with_name("crash_server.py")
MODES = pytest.mark.parametrize("at_most_once", [False, True], ids=["default", "at_most_once"])


class CrashServer:
    """One ``crash_server.py`` process; ``kill()`` is a SIGKILL."""

    def __init__(self, store: Path, runs: Path, *flags: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(store), str(runs), *flags],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), f"crash_server did not start: {line!r}"
        self.url = line.split()[-1]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


def runs_in(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def resend_of(envelope: dict) -> dict:
    return {"meta": {**envelope["meta"], "resend": True}, "data": envelope["data"]}


def flags(at_most_once: bool, *more: str) -> tuple[str, ...]:
    return (*more, "--at-most-once") if at_most_once else more


@MODES
async def test_an_acknowledged_send_is_not_run_again_after_a_kill(at_most_once, tmp_path, raw_client):
    """Killed right after the acks arrived: every resend gets its remembered reply."""
    store, runs = tmp_path / "store.sqlite3", tmp_path / "runs"
    envelopes = [protocol.request("work", {"n": n}, f"acked-{n}") for n in range(10)]
    server = CrashServer(store, runs, *flags(at_most_once))
    try:
        sio = await raw_client(server.url)
        replies = await asyncio.gather(*(sio.call("message", e, timeout=5) for e in envelopes))
    finally:
        server.kill()  # no commit delay can hide behind this: the kill follows the last ack at once
    assert [reply["data"]["runs"] for reply in replies] == [1] * 10
    server = CrashServer(store, runs, *flags(at_most_once))
    try:
        sio = await raw_client(server.url)
        again = await asyncio.gather(*(sio.call("message", resend_of(e), timeout=5) for e in envelopes))
    finally:
        server.kill()
    assert again == replies
    assert sorted(runs_in(runs)) == sorted(e["meta"]["id"] for e in envelopes)


async def kill_while_running(store: Path, runs: Path, envelope: dict, raw_client, wait_until,
                             at_most_once: bool) -> None:
    """Send ``envelope``, wait until its handler has started (on the runs file), SIGKILL."""
    server = CrashServer(store, runs, *flags(at_most_once, "--block"))
    try:
        sio = await raw_client(server.url)
        await sio.emit("message", envelope, callback=lambda *reply: None)  # the ack never comes
        await wait_until(lambda: runs_in(runs) == [envelope["meta"]["id"]])
    finally:
        server.kill()


@MODES
async def test_a_send_killed_while_its_handler_runs(at_most_once, tmp_path, raw_client, wait_until):
    store, runs = tmp_path / "store.sqlite3", tmp_path / "runs"
    envelope = protocol.request("work", {"block": True}, "killed-1")
    await kill_while_running(store, runs, envelope, raw_client, wait_until, at_most_once)
    server = CrashServer(store, runs, *flags(at_most_once))  # no --block: a run now returns
    try:
        sio = await raw_client(server.url)
        reply = await sio.call("message", resend_of(envelope), timeout=5)
        second = await sio.call("message", resend_of(envelope), timeout=5)
    finally:
        server.kill()
    if at_most_once:  # the first run may have had effects: not run again, and the client is told
        assert reply["meta"]["success"] is False and reply["meta"]["code"] == protocol.OUTCOME_UNKNOWN
        assert runs_in(runs) == ["killed-1"]
    else:  # the documented default: an unacknowledged message runs again on its resend
        assert reply == {"meta": {"success": True}, "data": {"id": "killed-1", "runs": 2}}
        assert runs_in(runs) == ["killed-1", "killed-1"]
    assert second == reply  # and the answer, whichever, is remembered


@pytest.mark.parametrize("resend", [False, True], ids=["first-send", "resend"])
async def test_at_most_once_copy_of_a_message_still_running_waits_for_it(resend, tmp_path):
    """No crash, no error: in a live server a copy arriving mid-run gets the first run's reply.

    At the ReplyMemory level on a real SQLite file, so the second copy
    arrives exactly while the first one's handler runs (after its marker is durable).
    """
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.open()
    memory, release, runs = ReplyMemory(store, at_most_once=True), asyncio.Event(), []

    async def run() -> str:
        runs.append(1)
        await release.wait()
        return protocol.encode_json(protocol.success("first"))

    first = asyncio.ensure_future(memory.once("p", "live-1", run, resent=False))
    while not runs:  # the first copy's handler is running
        await asyncio.sleep(0)
    assert await store.recall("p", "live-1") == STARTED
    copy = asyncio.ensure_future(memory.once("p", "live-1", run, resent=resend))
    await asyncio.sleep(0)
    assert not copy.done()  # waiting, not answered OUTCOME_UNKNOWN
    release.set()
    assert await copy == await first == protocol.encode_json(protocol.success("first"))
    assert runs == [1]
    assert await store.recall("p", "live-1") == await first  # the reply replaced the marker
    await store.close()


async def test_at_most_once_does_not_run_a_handler_whose_start_cannot_be_recorded(tmp_path, caplog):
    """Without a durable marker a crash could not be told from a first run: refuse, run nothing."""
    class FullDisk(SqliteStore):  # a real SQLite store whose writes of replies fail
        async def remember(self, principal, message_id, reply_json, ts):
            raise OSError("disk full")

    store = FullDisk(tmp_path / "store.sqlite3")
    await store.open()
    runs = []

    async def run() -> str:
        runs.append(1)
        return protocol.encode_json(protocol.success("ran"))

    reply = await ReplyMemory(store, at_most_once=True).once("p", "m-1", run, resent=False)
    await store.close()
    assert runs == []
    assert json.loads(reply)["meta"]["code"] == protocol.HANDLER_ERROR
    assert "m-1 could not be remembered durably (start marker" in caplog.text


async def test_at_most_once_resend_to_another_process_while_the_first_still_runs(
        redis_prefix, redis_url, start_server, raw_client, wait_until):
    """Two servers on one Redis: the other process only sees the marker, so it answers 2005;
    once the first run ends, every later copy gets its reply (the documented multi-process case)."""
    release, runs = asyncio.Event(), []

    def route(sx) -> None:
        async def work(data, socket):
            runs.append(data)
            await release.wait()
            return {"ran": data}
        sx.on_message("work", work)

    first = await start_server(route, store=RedisStore(redis_url, prefix=redis_prefix), at_most_once=True)
    second = await start_server(route, store=RedisStore(redis_url, prefix=redis_prefix), at_most_once=True)
    envelope = protocol.request("work", 1, "across-1")
    on_first, on_second = await raw_client(first.url), await raw_client(second.url)
    running = asyncio.ensure_future(on_first.call("message", envelope, timeout=5))
    await wait_until(lambda: runs == [1])  # running on the first server, its marker in Redis
    elsewhere = await on_second.call("message", resend_of(envelope), timeout=5)
    assert elsewhere["meta"]["code"] == protocol.OUTCOME_UNKNOWN
    release.set()
    reply = await running
    assert reply == {"meta": {"success": True}, "data": {"ran": 1}}
    assert await on_second.call("message", resend_of(envelope), timeout=5) == reply
    assert runs == [1]
