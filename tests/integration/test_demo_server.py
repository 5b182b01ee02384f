"""The demo server's HTTP helpers (used by the browser tests and by hand)."""

import aiohttp
import pytest
from aiohttp import web

from shotx.server.__main__ import SX, build_app


async def test_http_publish_stores_and_refuses_bad_input_clearly(tmp_path):
    app = build_app("memory", None, 0)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/demo/publish?room=r", json={"n": 1}) as response:
                assert response.status == 200 and (await response.json())["offset"] == 1
            for query, body in (("room=r", b""), ("room=r", b"{not json"), ("room=", b'{"n": 2}'),
                                ("room=r", b'{"n": NaN}')):
                async with http.post(f"{base}/demo/publish?{query}", data=body) as response:
                    assert response.status == 400, (query, body)
                    assert (await response.json())["error"].startswith("cannot publish")
            async with http.get(f"{base}/demo/handled") as response:
                assert await response.json() == []
        assert (await app[SX].store.bounds("r")).head == 1  # nothing bad was logged
    finally:
        await runner.cleanup()


async def test_private_rooms_keep_user_rooms_to_their_user_and_the_rest_open(tmp_path):
    from shotx.client import JoinRefused, SxClient

    app = build_app("memory", None, 0, private_rooms=True)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = SxClient(url)
    try:
        await client.connect("user-42")
        assert (await client.join("user-user-42"))["room"] == "user-user-42"
        assert (await client.join("user-room"))["room"] == "user-room"  # the demo room stays open
        assert (await client.join("lobby"))["room"] == "lobby"
        with pytest.raises(JoinRefused):
            await client.join("user-user123")  # token "valid"'s room
    finally:
        await client.close()
        await runner.cleanup()


async def test_the_demo_server_runs_on_uvloop_when_installed_and_serves(tmp_path):
    """``python -m shotx.server`` picks uvloop (the ``fast`` extra, in the test venv) and the
    fast path works on its transports: a message's ack and a room message arrive."""
    import asyncio
    import signal
    import subprocess
    import sys

    from shotx.client import SxClient

    proc = subprocess.Popen([sys.executable, "-m", "shotx.server", "--port", "0", "--store", "memory",
                             "--interval", "0", "--web", "/dev/null", "--verbose"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        logged = [proc.stderr.readline() for _ in range(1)]
        assert "event loop: uvloop" in logged[0], logged
        client = SxClient(url)
        arrived = asyncio.Event()
        client.on_message("notification", lambda data, meta: arrived.set() if data == {"n": 2} else None)
        try:
            await client.connect("valid")
            assert (await client.send("test_route", {"n": 1}))["data"] == {"n": 1}
            await client.join("user-room")
            await client.send("publish", {"n": 2})
            await asyncio.wait_for(arrived.wait(), 10)
        finally:
            await client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


async def test_the_server_queues_a_burst_of_500_connections_it_has_not_accepted_yet():
    """``python -m shotx.server`` listens with a backlog of LISTEN_BACKLOG, as Node's server does
    with 511: aiohttp's run_app listened again with 128 by default, so of 500 clients connecting
    at once the rest had their SYN dropped and retried a second later. With the server stopped
    (SIGSTOP: nothing is accepted), the kernel must still complete 500 handshakes."""
    import asyncio
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "shotx.server", "--port", "0", "--store", "memory",
                             "--interval", "0", "--web", "/dev/null"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    writers: list[asyncio.StreamWriter] = []
    try:
        url = proc.stdout.readline().split()[-1]
        async with aiohttp.ClientSession() as http:  # serving: aiohttp has listened again by now
            async with http.get(url + "/shotx/?EIO=4&transport=polling") as response:
                assert response.status == 200
        host, port = url.removeprefix("http://").rsplit(":", 1)
        proc.send_signal(signal.SIGSTOP)

        async def connect() -> None:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
            except (TimeoutError, OSError):
                return
            writers.append(writer)

        await asyncio.gather(*(connect() for _ in range(500)))
        assert len(writers) == 500, f"{len(writers)} of 500 handshakes completed while nothing was accepted"
    finally:
        for writer in writers:
            writer.close()
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
