"""Auth: success, the three refusals, and that refusals do not hang."""

import asyncio
import time

import pytest
import socketio

from shotx.client import AuthError, protocol


def demo_auth(sx):
    @sx.auth
    async def check(token, socket):
        if token == "throws":
            raise RuntimeError("auth backend down")
        return {"user_id": "user123"} if token == "valid" else None


async def test_valid_token_returns_auth_data(start_server, make_client):
    server = await start_server(demo_auth)
    client = make_client(server.url)
    assert await client.connect("valid") == {"user_id": "user123"}
    assert client.is_connected and client.auth_data == {"user_id": "user123"}


@pytest.mark.parametrize("token, code", [("invalid", "AUTH_FAIL"), ("", "AUTH_NULL"), ("throws", "AUTH_ERROR")])
async def test_refusals_raise_promptly_with_the_code(start_server, make_client, token, code):
    server = await start_server(demo_auth)
    client = make_client(server.url)  # reconnection on, no timeout: must still not hang
    started = time.monotonic()
    with pytest.raises(AuthError) as caught:
        await asyncio.wait_for(client.connect(token), 5)
    assert caught.value.code == code and str(caught.value) == code
    assert time.monotonic() - started < 2
    assert not client.is_connected and client.state == f"error: {code}"


async def test_missing_auth_object_is_auth_null(start_server):
    server = await start_server(demo_auth)
    sio = socketio.AsyncClient(reconnection=False)
    errors = []
    sio.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(server.url, socketio_path="shotx", transports=["websocket"])
    await sio.disconnect()
    assert errors and errors[0]["message"] == "AUTH_NULL"


async def test_sync_auth_handler_and_chaining(start_server, make_client):
    def setup(sx):
        assert sx.set_auth_handler(lambda token, socket: {"t": token}) is sx
    server = await start_server(setup)
    assert await make_client(server.url).connect("abc") == {"t": "abc"}


async def test_default_auth_accepts_any_token_with_empty_auth(start_server, make_client):
    server = await start_server()
    client = make_client(server.url)
    assert await client.connect("anything") == {}


async def test_auth_handler_sees_handshake_and_auth_success_is_emitted(start_server):
    seen = {}

    def setup(sx):
        @sx.auth
        def check(token, socket):
            seen.update(token=token, handshake=dict(socket.handshake), sid=socket.id)
            return {"ok": True}

    server = await start_server(setup)
    sio = socketio.AsyncClient(reconnection=False)
    got = asyncio.get_running_loop().create_future()
    sio.on("auth_success", lambda data: got.done() or got.set_result(data))
    await sio.connect(server.url, auth={"token": "t1", "extra": 1}, socketio_path="shotx", transports=["websocket"])
    try:
        assert await asyncio.wait_for(got, 5) == {"ok": True}
        assert seen["token"] == "t1" and seen["handshake"] == {"token": "t1", "extra": 1} and seen["sid"]
    finally:
        await sio.disconnect()


async def test_a_client_event_named_connect_or_disconnect_cannot_change_who_a_socket_is(start_server, raw_client):
    """Hole: python-socketio dispatches a client's ordinary ``connect`` event to the
    server's connect handler, which rebuilt the socket's identity from the
    attacker's token and forged environ; ``disconnect`` likewise dropped it."""
    def routes(sx):
        sx.set_auth_handler(lambda token, socket: {"user": token})
        sx.on_message("whoami", lambda data, socket: socket.auth)

    server = await start_server(routes)
    sio = await raw_client(server.url, token="mallory")

    async def whoami():
        reply = await sio.call("message", {"meta": {"type": "whoami", "id": protocol.uuid7()}, "data": None},
                               timeout=5)
        return reply["data"]

    assert await whoami() == {"user": "mallory"}
    await sio.call("connect", ({"HTTP_HOST": "forged"}, {"token": "admin"}), timeout=5)
    assert await whoami() == {"user": "mallory"}
    await sio.call("disconnect", "forged", timeout=5)
    assert await whoami() == {"user": "mallory"}  # still authenticated, same identity
    assert len(server.sx.sockets) == 1
