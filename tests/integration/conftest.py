"""Real servers on loopback sockets, real clients; nothing mocked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import socketio
from aiohttp import web

from shotx.client import SxClient
from shotx.server import SxServer

from redis_keys import REDIS_URL, own_prefix  # tests/ is on sys.path (pyproject.toml)


@dataclass
class Running:
    sx: SxServer
    url: str
    port: int
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def start_server() -> Any:
    """``await start_server(store=..., port=0, **SxServer options)`` -> Running."""
    running: list[Running] = []

    async def start(setup: Callable[[SxServer], None] | None = None, port: int = 0, **options: Any) -> Running:
        options.setdefault("store", "memory")
        app = web.Application()
        sx = SxServer(app, **options)
        if setup is not None:
            setup(sx)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        bound = runner.addresses[0][1]
        server = Running(sx, f"http://127.0.0.1:{bound}", bound, runner)
        running.append(server)
        return server

    yield start
    for server in running:
        await server.stop()


@pytest.fixture
async def make_client() -> Any:
    """``make_client(url, **SxClient options)``; every client is closed afterwards."""
    clients: list[SxClient] = []

    def make(url: str, **options: Any) -> SxClient:
        options.setdefault("reconnection_delay", 0.05)
        options.setdefault("reconnection_delay_max", 0.2)
        client = SxClient(url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def raw_client() -> Any:
    """A bare python-socketio client, to send what SxClient refuses to send."""
    made: list[socketio.AsyncClient] = []

    async def connect(url: str, token: Any = "valid", client: str | None = "raw-test-client") -> socketio.AsyncClient:
        """``client``: the instance id our client sends (resends are matched per principal and client)."""
        sio = socketio.AsyncClient(reconnection=False)
        auth = {"token": token} if client is None else {"token": token, "client": client}
        await sio.connect(url, auth=auth, socketio_path="shotx", transports=["websocket"])
        made.append(sio)
        return sio

    yield connect
    for sio in made:
        await sio.disconnect()


async def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)




@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> Any:
    """A key prefix of this test's own on the test Redis; its keys are deleted afterwards.

    Without a Redis the test skips on a laptop and fails in CI (``tests/redis_keys.py``).
    Ask for it before ``start_server``, so that it is torn down after the
    servers, whose closing stores still write.
    """
    with own_prefix("test") as prefix:
        yield prefix


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``await wait_until(lambda: cond, timeout=5)``: poll instead of sleeping blindly."""
    return _wait_until
