"""Wire compatibility: the npm socket.io-client, speaking Shotx, against our server."""

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from ci_env import in_ci  # tests/ is on sys.path (pyproject.toml)

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "web" / "node_modules"


def shotx_routes(sx):
    @sx.auth
    async def check(token, socket):
        if token == "throws":
            raise RuntimeError("down")
        return {"userId": "user123"} if token == "valid" else None

    sx.on_message("test_route", lambda data, socket: {"status": "ok", "data": data, "auth": socket.auth})
    sx.on_message("error_route", lambda data, socket: (_ for _ in ()).throw(ValueError("Handler exploded")))

    async def publish_live(data, socket):
        return await sx.to("user-room").send("notification", data)
    sx.on_message("publish_live", publish_live)


def node_available() -> bool:
    found = shutil.which("node") and (NODE_MODULES / "socket.io-client").is_dir()
    if not found and in_ci():
        pytest.fail("node and web/node_modules/socket.io-client are required in CI (python3 build.py bundle)")
    return bool(found)


async def run_js_peer(script: str, *args: str, timeout: float) -> dict:
    """Run a Node.js peer of this folder with the bundle's socket.io-client; what it printed, as JSON."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(Path(__file__).with_name(script)), *args,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, stderr.decode()
    return json.loads(stdout)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_js_shotx_peer_cannot_tell_our_server_from_the_original(start_server, transport):
    """Over either transport: one long-poll can carry a join's answer and its backlog together,
    and a Node.js socket.io-client emits a whole read at once (over an uncompressed WebSocket,
    Node's engine.io default and ours, too), so the backlog must wait for the client to read
    the answer: the original's room demo registers its handler after ``await join()``."""
    if not node_available():
        pytest.skip("needs node and web/node_modules (python3 build.py bundle)")
    server = await start_server(shotx_routes)
    for n in (1, 2):  # the Shotx backlog: stored while the room is empty
        await server.sx.to("user-room").send("notification", {"n": n})
    for n in (1, 2, 3):  # a backlog for a handler registered after `await join()`
        await server.sx.to("late-room").send("notification", {"n": n})
    seen = await run_js_peer("shotx_js_peer.cjs", server.url, transport, timeout=30)
    assert seen["auth"] == {"userId": "user123"}
    assert seen["ok"] == {"meta": {"success": True},
                          "data": {"status": "ok", "data": {"n": 1}, "auth": {"userId": "user123"}}}
    assert seen["unknown"] == {"meta": {"success": False, "code": 2003, "error": "Unknown message type: missing_route"},
                               "data": None}
    assert seen["raises"] == {"meta": {"success": False, "code": 2004, "error": "Handler exploded"}, "data": None}
    assert seen["notObject"]["meta"] == {"success": False, "code": 2001, "error": "Invalid message format"}
    assert seen["noType"]["meta"] == {"success": False, "code": 2002, "error": "Invalid message type"}
    assert seen["join"]["meta"] == {"success": True}
    assert [m["data"]["n"] for m in seen["room"]] == [1, 2, 3]
    assert all(m["meta"]["type"] == "notification" and len(m["meta"]["id"]) == 36 for m in seen["room"])
    assert seen["leave"]["meta"] == {"success": True}
    assert seen["lateJoin"]["meta"] == {"success": True} and seen["late"] == [1, 2, 3]
    assert (seen["badToken"], seen["noToken"], seen["throws"]) == ("AUTH_FAIL", "AUTH_NULL", "AUTH_ERROR")


def file_routes(sx):
    sx.on_message("file_route", lambda data, socket: {"sha": hashlib.sha256(data).hexdigest(), "back": data[::-1]})

    async def publish_file(data, socket):
        return await sx.to("files").send("file", {"name": "f.bin", "file": data})
    sx.on_message("publish_file", publish_file)


async def test_js_shotx_peer_sends_a_buffer_and_gets_binary_back(start_server):
    """``send(type, buffer)``, as the original sends files: a 1 MiB Buffer goes up as a
    Socket.IO attachment, and the reply and a room message carry bytes back as binary."""
    if not node_available():
        pytest.skip("needs node and web/node_modules (python3 build.py bundle)")
    server = await start_server(file_routes)
    seen = await run_js_peer("shotx_js_binary_peer.cjs", server.url, timeout=60)
    assert seen["meta"] == {"success": True} and seen["join"] == {"success": True}
    assert seen["replySha"] == seen["sent"] == seen["backSha"] == seen["roomSha"]  # the same bytes each way
    assert seen["replyKind"] == seen["roomKind"] == "Buffer"  # binary, not text or a JSON array of numbers
    assert seen["roomName"] == "f.bin"


@pytest.mark.parametrize("transports", ["websocket", "polling", "polling,websocket"])
async def test_a_js_client_whose_connection_the_server_ends_reconnects_at_once(start_server, transports):
    """socket.io-client ignores Engine.IO's CLOSE packet on a WebSocket: the server must close
    the WebSocket itself (upgraded from long-polling too), or the client sits on the dead
    connection until its ping timeout. Long-polling hands it the CLOSE packet."""
    if not node_available():
        pytest.skip("needs node and web/node_modules (python3 build.py bundle)")
    server = await start_server(shotx_routes)  # engine.io's ping interval and timeout: 25 + 20 s
    seen = await run_js_peer("js_server_ended_peer.cjs", server.url, transports, timeout=30)
    assert seen["reason"] == ("transport error" if transports == "polling" else "transport close"), seen
    assert seen["reconnectedMs"] is not None and seen["reconnectedMs"] < 5000, seen
