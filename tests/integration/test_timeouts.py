"""Per-call, default and overriding timeouts, and the connect timeout."""

import asyncio
import socket
import time

import pytest

from shotx.client import SxTimeoutError


def slow_routes(sx):
    async def slow(data, socket):
        await asyncio.sleep(2)
        return {"done": True}

    sx.on_message("slow_route", slow)
    sx.on_message("fast_route", lambda data, socket: {"fast": True})


async def test_per_call_timeout(start_server, make_client):
    client = make_client((await start_server(slow_routes)).url)
    await client.connect("t")
    with pytest.raises(SxTimeoutError) as caught:
        await client.send("slow_route", {}, timeout=0.2)
    assert str(caught.value) == "TIMEOUT: slow_route (200ms)"
    assert isinstance(caught.value, TimeoutError)
    assert await client.send("fast_route", {}, timeout=2) == {"fast": True}


async def test_default_timeout_from_constructor(start_server, make_client):
    client = make_client((await start_server(slow_routes)).url, timeout=0.3)
    await client.connect("t")
    with pytest.raises(SxTimeoutError, match=r"TIMEOUT: slow_route \(300ms\)"):
        await client.send("slow_route", {})


async def test_per_call_timeout_overrides_default(start_server, make_client):
    client = make_client((await start_server(slow_routes)).url, timeout=5)
    await client.connect("t")
    started = time.monotonic()
    with pytest.raises(SxTimeoutError, match=r"\(200ms\)"):
        await client.send("slow_route", {}, timeout=0.2)
    assert time.monotonic() - started < 1.5


async def test_timed_out_send_still_resolves_the_outbox(start_server, make_client, wait_until):
    client = make_client((await start_server(slow_routes)).url)
    await client.connect("t")
    with pytest.raises(SxTimeoutError):
        await client.send("slow_route", {}, timeout=0.1)
    assert client.queued == 1  # still owed: the ack has not come
    await wait_until(lambda: client.queued == 0, timeout=5)


async def test_connect_timeout_when_nothing_listens(make_client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}")
    with pytest.raises(SxTimeoutError) as caught:
        await client.connect("token", timeout=0.5)
    assert "TIMEOUT" in str(caught.value) and "connect" in str(caught.value) and "500ms" in str(caught.value)
    await client.disconnect()
    assert not client.is_connected
