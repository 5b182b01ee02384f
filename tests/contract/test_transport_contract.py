"""The transport contract (transport.py) held against SocketioTransport, over
real loopback sockets to a real demo server. The same cases run against
JsTransport in Chromium in tests/browser/test_transport_contract_js.py."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from transport_contract import CASES, KILLS_SERVER, Env

from shotx.client.socketio_transport import SocketioTransport


def post_publish(url: str, room: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(f"{url}/demo/publish?room={room}", data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize("case", list(CASES))
async def test_socketio_transport_keeps_the_contract(case: str, start_demo_server, dead_url: str) -> None:
    server = start_demo_server()

    async def publish(room: str, data: dict[str, Any]) -> None:
        await asyncio.to_thread(post_publish, server.url, room, data)

    async def drop() -> None:
        assert case in KILLS_SERVER, f"{case} kills the server but is not listed in KILLS_SERVER"
        await asyncio.to_thread(server.kill)

    await CASES[case](Env(server.url, dead_url, SocketioTransport, publish, drop))
