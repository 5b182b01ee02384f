"""``python -m shotx.server --workers 2`` on the real Redis: one port, two processes.

Clients connect over WebSocket, over long-polling (every request a new
connection through the primary), and over polling upgraded to WebSocket;
round-robin puts them on both workers (their sids say which), and room
messages published on either worker reach every member, in offset order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from shotx.client import SxClient
from shotx.client.socketio_transport import SocketioTransport
from test_wire_js import NODE_MODULES, node_available
from workers_server import WorkersServer

from redis_keys import REDIS_URL

HERE = Path(__file__).parent


def demo_argv(prefix: str, store: str = REDIS_URL, workers: int = 2) -> list[str]:
    return ["-m", "shotx.server", "--workers", str(workers), "--port", "0", "--store", store,
            "--prefix", prefix, "--interval", "0", "--web", str(HERE / "no-web-bundle")]


@pytest.fixture
async def servers(tmp_path: Path) -> Any:
    made: list[WorkersServer] = []

    async def start(argv: list[str]) -> WorkersServer:
        server = WorkersServer(argv, tmp_path / f"server-{len(made)}.stderr")
        made.append(server)
        await server.start()
        return server

    yield start
    for server in made:
        await server.close()


def worker_of_sid(sid: str | None) -> int:
    """Which worker holds a session: its sids are ``<index>.<engine.io id>``."""
    assert sid is not None and "." in sid, sid
    return int(sid.split(".", 1)[0])


def worker_of(client: SxClient) -> int:
    return worker_of_sid(client.transport._sio.eio.sid)  # the engine.io session under SxClient


class PollingPeer:
    """A Shotx peer on python-socketio over long-polling only, speaking the wire protocol."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.room: list[dict[str, Any]] = []
        self.sio.on("message", lambda message: self.room.append(message))

    async def connect(self, url: str) -> None:
        await self.sio.connect(url, auth={"token": "valid", "client": uuid.uuid4().hex},
                               socketio_path="shotx", transports=["polling"])

    async def ask(self, type_: str, data: Any) -> Any:
        reply = await self.sio.call("message", {"meta": {"type": type_, "id": str(uuid.uuid4())}, "data": data},
                                    timeout=10)
        assert reply["meta"]["success"], reply
        return reply["data"]

    @property
    def offsets(self) -> list[int]:
        return [message["meta"]["offset"] for message in self.room]


async def test_clients_on_both_workers_get_every_room_message_whichever_worker_published(
        servers, redis_prefix, make_client, wait_until):
    server = await servers(demo_argv(redis_prefix))
    assert sorted(server.pids) == [0, 1]
    received: dict[str, list[int]] = {}
    sx_clients: dict[str, SxClient] = {}
    for name, transports in (("ws-a", ("websocket",)), ("ws-b", ("websocket",)),
                             ("upgraded-a", ("polling", "websocket")), ("upgraded-b", ("polling", "websocket"))):
        client = make_client(server.url, transport=SocketioTransport(transports))
        received[name] = []
        client.on_message("notification", lambda data, meta, name=name: received[name].append(meta["offset"]))
        await client.connect("valid")
        sx_clients[name] = client
    pollers = {"polling-a": PollingPeer(), "polling-b": PollingPeer()}
    for peer in pollers.values():
        await peer.connect(server.url)
    where = {name: worker_of(client) for name, client in sx_clients.items()}
    where |= {name: worker_of_sid(peer.sio.eio.sid) for name, peer in pollers.items()}
    for kind in ("ws", "upgraded", "polling"):
        assert {where[f"{kind}-a"], where[f"{kind}-b"]} == {0, 1}, where
    for client in sx_clients.values():
        await client.join("user-room")
    for peer in pollers.values():
        assert (await peer.ask("sx_join", {"room": "user-room"}))["room"] == "user-room"

    for name, client in sx_clients.items():
        assert (await client.send("test_route", {"from": name}))["data"] == {"from": name}
        await client.send("publish", {"from": name})
    for name, peer in pollers.items():
        assert (await peer.ask("test_route", {"from": name}))["data"] == {"from": name}
        await peer.ask("publish", {"from": name})
    async with aiohttp.ClientSession() as http:
        for n in range(2):  # plain HTTP, each request a connection of its own, to whichever worker
            async with http.post(f"{server.url}/demo/publish", json={"n": n}) as response:
                assert response.status == 200
                assert response.headers["Connection"] == "close"

    everything = list(range(1, 9))
    await wait_until(lambda: all(len(offsets) >= 8 for offsets in received.values())
                     and all(len(peer.room) >= 8 for peer in pollers.values()), timeout=15)
    assert all(offsets == everything for offsets in received.values()), received
    assert all(peer.offsets == everything for peer in pollers.values()), {n: p.offsets for n, p in pollers.items()}
    # stopped first: python-engineio's polling client takes ~30 s to disconnect from a live server
    # (it waits for its pending long-poll), with one process as with two
    await server.stop()
    for peer in pollers.values():
        await peer.sio.disconnect()


async def test_shotx_javascript_peers_polling_then_upgrading_work_across_workers(servers, redis_prefix):
    """socket.io-client's default transports (long-polling, then the upgrade to WebSocket),
    four peers in one Node process, on both workers. (Its Node XHR does not reuse
    connections across sessions: the kept-alive case is the aiohttp test below.)"""
    if not node_available():
        pytest.skip("needs node and web/node_modules (python3 build.py bundle)")
    server = await servers(demo_argv(redis_prefix))
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "workers_js_peers.cjs"), server.url, "4",
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    peers = json.loads(stdout)
    assert sorted(worker_of_sid(peer["sids"][0]) for peer in peers) == [0, 0, 1, 1]
    for peer in peers:
        assert peer["transports"] == ["polling", "websocket"], peer  # it started on polling and upgraded
        assert peer["offsets"] == [1, 2, 3, 4], peer
        assert peer["echo"]["data"]["data"] == {"from": peer["index"]}


async def _handshake(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/shotx/?EIO=4&transport=polling") as response:
        body = await response.text()
    assert body.startswith("0{"), body
    return json.loads(body[1:])["sid"]


async def test_a_kept_alive_connection_never_carries_another_workers_session(servers, redis_prefix):
    """Browsers and Node reuse idle keep-alive connections across sessions, while the
    primary sees only a connection's first request: every response closes its connection."""
    server = await servers(demo_argv(redis_prefix))
    one_connection = aiohttp.TCPConnector(limit=1)  # reuses its connection whenever it can
    async with aiohttp.ClientSession(connector=one_connection) as reusing, aiohttp.ClientSession() as other:
        first = await _handshake(reusing, server.url)
        second = await _handshake(other, server.url)
        assert {worker_of_sid(first), worker_of_sid(second)} == {0, 1}
        for sid in (second, first):  # through the connection pool that saw the first handshake
            async with reusing.post(f"{server.url}/shotx/?EIO=4&transport=polling&sid={sid}",
                                    data='40{"token":"valid"}') as response:
                assert (response.status, await response.text()) == (200, "OK"), sid
                assert response.headers["Connection"] == "close"


async def test_a_killed_worker_is_started_again_and_its_clients_come_back_without_a_gap(
        servers, redis_prefix, make_client, wait_until):
    server = await servers(demo_argv(redis_prefix))
    clients, received = [], []
    for _ in range(2):
        client = make_client(server.url)
        got: list[int] = []
        client.on_message("notification", lambda data, meta, got=got: got.append(meta["offset"]))
        await client.connect("valid")
        await client.join("user-room")
        clients.append(client)
        received.append(got)
    assert sorted(worker_of(client) for client in clients) == [0, 1]
    await clients[0].send("publish", {"n": 1})
    await wait_until(lambda: all(got == [1] for got in received), timeout=10)

    killed = server.pids[1]
    os.kill(killed, signal.SIGKILL)  # the primary stays; only worker 1 dies
    await server.wait_for(lambda: server.pids[1] != killed, timeout=60)
    for n in (2, 3):  # published while the killed worker's client may still be reconnecting
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.url}/demo/publish", json={"n": n}) as response:
                assert response.status == 200
    await wait_until(lambda: all(client.is_connected for client in clients), timeout=15)
    for client in clients:
        assert (await client.send("test_route", {"after": "kill"}, timeout=10))["data"] == {"after": "kill"}
    await wait_until(lambda: all(len(got) >= 3 for got in received), timeout=15)
    assert received == [[1, 2, 3], [1, 2, 3]]
    assert (await server.stop()) < 10


async def test_sigterm_to_the_primary_stops_every_process_within_the_bound(servers, redis_prefix, make_client):
    server = await servers(demo_argv(redis_prefix))
    client = make_client(server.url, reconnection=False)
    await client.connect("valid")
    peer = PollingPeer()
    await peer.connect(server.url)
    took = await server.stop()
    # the bound: shutdown_timeout (5 s) + 5 s before the primary SIGKILLs a worker; a clean stop is far under
    assert took < 10, took
    print(f"workers: SIGTERM to the primary -> every process gone in {took:.2f} s")
    assert server.proc.returncode == 0
    assert await server.left_over() == set()
    await peer.sio.disconnect()


async def test_workers_stop_when_their_primary_is_killed(servers, redis_prefix):
    server = await servers(demo_argv(redis_prefix))
    workers = set(server.pids.values())
    server.signal(signal.SIGKILL)
    await server.proc.wait()
    assert await server.left_over() == set(), f"orphans of a killed primary: {workers}"


async def test_workers_refuse_a_store_they_cannot_share(servers, redis_prefix, tmp_path):
    server = WorkersServer(demo_argv(redis_prefix, store=str(tmp_path / "one.sqlite3")), tmp_path / "sqlite.stderr")
    with pytest.raises(AssertionError, match="the server did not start"):
        await server.start()
    await server.proc.wait()
    assert server.proc.returncode == 1
    stderr = (tmp_path / "sqlite.stderr").read_text()
    assert "2 workers need a store all of them share (a redis:// URL)" in stderr, stderr
    assert "SqliteStore" in stderr
    assert await server.left_over() == set()


async def test_an_application_runs_on_workers_through_run_workers(servers, redis_prefix, make_client, wait_until):
    """The documented helper, as an application script uses it (``workers_app.py``)."""
    server = await servers([str(HERE / "workers_app.py"), REDIS_URL, redis_prefix])
    answers = set()
    clients = []
    for _ in range(2):
        client = make_client(server.url)
        await client.connect("anything")
        answers.add((await client.send("whoami", None))["worker"])
        clients.append(client)
    assert answers == {0, 1}
    got: list[Any] = []
    clients[1].on_message("news", lambda data: got.append(data))
    await clients[1].join("news-room")
    await clients[0].send("shout", {"from": "worker of client 0"})
    await wait_until(lambda: len(got) == 1, timeout=10)
    assert got == [{"from": "worker of client 0"}]

