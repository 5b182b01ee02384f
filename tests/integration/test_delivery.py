"""Our guarantees past Shotx: lost acks, resends, and restarts lose nothing."""

import asyncio
import os
import signal
import subprocess
import sys

from shotx.client import SxClient


def counting(counts, sx):
    async def pay(data, socket):
        counts[data["n"]] = counts.get(data["n"], 0) + 1
        if data.get("drop_ack") and counts[data["n"]] == 1:
            await sx.sio.disconnect(socket.sid)  # the reply cannot reach the client now
        if data.get("slow"):
            asyncio.ensure_future(sx.sio.disconnect(socket.sid))
            await asyncio.sleep(0.5)
        return {"paid": data["n"], "runs": counts[data["n"]]}
    sx.on_message("pay", pay)


async def test_send_whose_ack_was_lost_is_resent_and_runs_once(start_server, make_client):
    counts = {}
    server = await start_server(lambda sx: counting(counts, sx))
    client = make_client(server.url)
    await client.connect("t")
    reply = await asyncio.wait_for(client.send("pay", {"n": 1, "drop_ack": True}), 5)
    assert reply == {"paid": 1, "runs": 1} and counts == {1: 1}
    assert client.is_connected and client.queued == 0


async def test_resend_while_the_first_copy_still_runs_waits_for_it(start_server, make_client):
    counts = {}
    server = await start_server(lambda sx: counting(counts, sx))
    client = make_client(server.url)
    await client.connect("t")
    reply = await asyncio.wait_for(client.send("pay", {"n": 2, "slow": True}), 5)
    assert reply == {"paid": 2, "runs": 1} and counts == {2: 1}


async def test_idempotency_is_per_principal(start_server, raw_client):
    counts = {}

    def setup(sx):
        sx.set_auth_handler(lambda token, socket: {"user": token})
        counting(counts, sx)

    server = await start_server(setup)
    message = {"meta": {"type": "pay", "id": "0190b6c0-0000-7000-8000-000000000001"}, "data": {"n": 3}}
    alice, bob = await raw_client(server.url, "alice"), await raw_client(server.url, "bob")
    assert (await alice.call("message", message, timeout=5))["data"]["runs"] == 1
    assert (await alice.call("message", message, timeout=5))["data"]["runs"] == 1  # remembered
    assert (await bob.call("message", message, timeout=5))["data"]["runs"] == 2  # another principal
    assert counts == {3: 2}


async def test_clients_with_the_same_auth_data_never_share_a_reply(start_server, raw_client):
    """Hole: replies were keyed by the principal (the auth data, ``{}`` by default), so a
    client that sent another's message id first got its reply and the other's handler never ran."""
    counts = {}
    server = await start_server(lambda sx: counting(counts, sx))  # default auth: every client is {}
    message = {"meta": {"type": "pay", "id": "0190b6c0-0000-7000-8000-000000000002", "resend": True},
               "data": {"n": 4}}
    first = await raw_client(server.url, "t", client="client-a")
    other = await raw_client(server.url, "t", client="client-b")
    shotx_js = await raw_client(server.url, "t", client=None)  # sends no client id: keyed by connection
    assert (await other.call("message", message, timeout=5))["data"]["runs"] == 1
    assert (await first.call("message", message, timeout=5))["data"]["runs"] == 2  # its own run
    assert (await shotx_js.call("message", message, timeout=5))["data"]["runs"] == 3
    again = await raw_client(server.url, "t", client="client-a")  # client-a after a reconnect
    assert (await again.call("message", message, timeout=5))["data"]["runs"] == 2  # remembered for it
    assert counts == {4: 3}


async def test_a_client_keeps_its_id_in_its_store(tmp_path):
    first = SxClient("http://127.0.0.1:9", store=tmp_path / "c.sqlite3")
    await first.restore()
    await first.close()
    again = SxClient("http://127.0.0.1:9", store=tmp_path / "c.sqlite3")
    await again.restore()
    await again.close()
    other = SxClient("http://127.0.0.1:9")
    await other.restore()
    assert first.client_id == again.client_id and len(first.client_id) == 32 and other.client_id != first.client_id


async def test_client_reconnects_with_backoff_when_the_server_comes_back(start_server, make_client, wait_until):
    counts = {}
    server = await start_server(lambda sx: counting(counts, sx), store="memory")
    client = make_client(server.url)
    await client.connect("t")
    await server.stop()
    await wait_until(lambda: not client.is_connected)
    sends = [asyncio.ensure_future(client.send("pay", {"n": n})) for n in range(5)]
    await asyncio.sleep(0.3)
    assert client.queued == 5
    await start_server(lambda sx: counting(counts, sx), port=server.port)
    replies = await asyncio.wait_for(asyncio.gather(*sends), 10)
    assert [r["paid"] for r in replies] == [0, 1, 2, 3, 4] and counts == {n: 1 for n in range(5)}


def start_demo(store_path, port=0):
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotx.server", "--port", str(port), "--store", str(store_path),
         "--interval", "0", "--web", os.devnull], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "listening on" in line, line
    return proc, line.split()[-1]


async def test_server_killed_and_restarted_on_sqlite_loses_nothing(tmp_path):
    store = tmp_path / "server.sqlite3"
    proc, url = start_demo(store)
    try:
        publisher = SxClient(url)
        await publisher.connect("valid")
        offsets = [(await publisher.send("publish", {"n": n}))["offset"] for n in range(1, 21)]
        assert offsets == list(range(1, 21))
        await publisher.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    proc, url = start_demo(store)
    try:
        member, got = SxClient(url), []
        member.on_message("notification", lambda data: got.append(data["n"]))
        await member.connect("valid")
        answer = await member.join("user-room")
        assert answer["head"] == 20 and answer["replayed"] == 20
        assert got == list(range(1, 21))
        await member.close()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


async def test_resend_after_a_server_restart_finds_the_reply_in_sqlite(start_server, raw_client, tmp_path):
    counts = {}
    store = tmp_path / "replies.sqlite3"
    first = await start_server(lambda sx: counting(counts, sx), store=store)
    message = {"meta": {"type": "pay", "id": "0190b6c0-0000-7000-8000-0000000000aa"}, "data": {"n": 7}}
    sio = await raw_client(first.url)
    assert (await sio.call("message", message, timeout=5))["data"] == {"paid": 7, "runs": 1}
    await sio.disconnect()
    await first.stop()  # closes the store: pending replies are committed
    second = await start_server(lambda sx: counting(counts, sx), store=store, port=first.port)
    sio = await raw_client(second.url)
    resent = {"meta": {**message["meta"], "resend": True}, "data": message["data"]}
    assert (await sio.call("message", resent, timeout=5))["data"] == {"paid": 7, "runs": 1}
    assert counts == {7: 1}


async def test_client_flags_only_what_may_have_gone_out_before(start_server, make_client, raw_client):
    seen = []

    def setup(sx):
        sx.on_message("probe", lambda data, socket, meta: seen.append((data, bool(meta.get("resend")))))

    server = await start_server(setup)
    client = make_client(server.url)
    offline = asyncio.ensure_future(client.send("probe", "queued offline"))
    await asyncio.sleep(0.05)
    await client.connect("t")
    await asyncio.wait_for(offline, 5)
    await client.send("probe", "live")
    assert seen == [("queued offline", False), ("live", False)]


async def test_a_client_on_a_store_others_can_open_flags_what_it_queued_offline(start_server, make_client,
                                                                                 tmp_path):
    """Another client on the same file (a tab on the same IndexedDB) may have sent it meanwhile:
    tests/integration/test_shared_outbox.py shows what a first send would cost."""
    seen = []

    def setup(sx):
        sx.on_message("probe", lambda data, socket, meta: seen.append((data, bool(meta.get("resend")))))

    server = await start_server(setup)
    client = make_client(server.url, store=str(tmp_path / "outbox.sqlite3"))
    queued = await client.queue("probe", "queued offline")
    await client.connect("t")
    await asyncio.wait_for(queued, 5)
    await client.send("probe", "live")
    assert seen == [("queued offline", True), ("live", False)]
