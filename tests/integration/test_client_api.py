"""Client API details: defaults, validation, handler forms, and when offsets are stored."""

import asyncio

import pytest

from shotx.client import ConnectError, SxClient
from shotx.client.sqlite_store import SqliteStore


def test_defaults_and_validation():
    client = SxClient()
    assert client.url == "http://localhost:3000" and client.path == "/shotx/" and client.timeout == 0
    assert not client.is_connected and client.queued == 0 and client.state == "disconnected"
    assert SxClient("http://example.com:8080", timeout=5).timeout == 5
    with pytest.raises(TypeError):
        SxClient("")
    with pytest.raises(ValueError):
        SxClient(timeout=-1)
    with pytest.raises(TypeError):
        client.on_message(3, lambda data: None)
    with pytest.raises(TypeError):
        client.on_message("t", "not callable")


async def test_without_reconnection_an_unreachable_server_fails_fast():
    client = SxClient("http://127.0.0.1:9", reconnection=False)
    with pytest.raises(ConnectError):
        await asyncio.wait_for(client.connect("t"), 10)
    await client.close()


async def test_handler_forms_sync_async_decorator_and_one_argument(start_server, make_client, wait_until):
    server = await start_server()
    client, got = make_client(server.url), []

    @client.on_message("a")
    async def on_a(data, meta):
        got.append(("a", data, meta["room"]))

    assert client.on_message("b", lambda data: got.append(("b", data, None))) is client
    await client.connect("t")
    await client.join("r")
    await server.sx.to("r").send("a", 1)
    await server.sx.to("r").send("b", 2)
    await wait_until(lambda: len(got) == 2)
    assert got == [("a", 1, "r"), ("b", 2, None)]


async def test_a_raising_handler_does_not_block_the_room(start_server, make_client, wait_until):
    server = await start_server()
    client, got = make_client(server.url), []

    def handler(data):
        got.append(data)
        if data == 1:
            raise RuntimeError("app bug")

    client.on_message("n", handler)
    await client.connect("t")
    await client.join("r")
    for n in (1, 2):
        await server.sx.to("r").send("n", n)
    await wait_until(lambda: got == [1, 2] and client.rooms.offsets["r"] == 2)


async def test_offset_is_stored_only_after_the_handler_finished(start_server, tmp_path, wait_until):
    server = await start_server()
    path = tmp_path / "slow.sqlite3"
    release, entered = asyncio.Event(), asyncio.Event()

    async def slow(data):
        entered.set()
        await release.wait()

    client = SxClient(server.url, store=path)
    client.on_message("n", slow)
    try:
        await client.connect("t")
        await client.join("r")
        await server.sx.to("r").send("n", 1)
        await asyncio.wait_for(entered.wait(), 5)
        probe = SqliteStore(path)
        assert (await probe.load()).rooms == {"r": 0}  # the join answer's position; handler still running
        release.set()
        await wait_until(lambda: client.rooms.offsets["r"] == 1)
        assert (await probe.load()).rooms == {"r": 1}
        await probe.close()
    finally:
        await client.close()


async def test_join_while_offline_completes_on_connect(start_server, make_client, wait_until):
    server = await start_server()
    await server.sx.to("later").send("n", "stored")
    client, got = make_client(server.url), []
    client.on_message("n", got.append)
    joining = asyncio.ensure_future(client.join("later"))
    await asyncio.sleep(0.05)
    assert not joining.done()
    await client.connect("t")
    answer = await asyncio.wait_for(joining, 5)
    assert answer["replayed"] == 1
    await wait_until(lambda: got == ["stored"])
