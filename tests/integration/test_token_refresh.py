"""Tokens that refresh: connect() takes a function called before every attempt.

Long-lived pages locked themselves out when their token expired: a reconnect
sent the token given to the first connect()."""

from __future__ import annotations

import asyncio

import pytest

from shotx.client import AuthError, SxClient
from shotx.client import client as client_module


def token_server(valid, seen, handled):
    def setup(sx):
        def check(token, socket):
            seen.append(token)
            return {"token": token} if token in valid else None
        sx.set_auth_handler(check)
        sx.on_message("t", lambda data, socket: handled.append(data) or data)
    return setup


async def test_a_token_that_expired_while_offline_is_replaced_on_reconnect(start_server, make_client, wait_until):
    valid, seen, handled = {"t1"}, [], []
    first = await start_server(token_server(valid, seen, handled))
    issued = iter(["t1", "t2", "t3"])
    current = {"token": next(issued)}

    async def fresh_token():  # as an app would ask its auth service
        await asyncio.sleep(0)
        return current["token"]

    client = make_client(first.url)
    assert await client.connect(fresh_token) == {"token": "t1"}
    port = first.port
    await first.stop()  # offline; meanwhile t1 expires and t2 is issued
    valid.clear()
    valid.add("t2")
    current["token"] = next(issued)
    queued = [await client.queue("t", n) for n in range(3)]
    await start_server(token_server(valid, seen, handled), port=port)
    assert [await future for future in queued] == [0, 1, 2]
    assert client.auth_data == {"token": "t2"} and seen[-1] == "t2" and handled == [0, 1, 2]


async def test_a_refusal_on_reconnect_stops_the_retries_keeps_the_outbox_and_is_told(start_server, make_client,
                                                                                     wait_until):
    valid, seen, handled = {"good"}, [], []
    server = await start_server(token_server(valid, seen, handled))
    token = {"now": "good"}
    refusals = []
    client = make_client(server.url)
    client.on_auth_error(refusals.append)
    await client.connect(lambda: token["now"])
    token["now"] = "revoked"
    await server.sx.sio.disconnect(next(iter(server.sx.sockets)))  # the server drops us
    await wait_until(lambda: refusals)
    assert isinstance(refusals[0], AuthError) and refusals[0].code == "AUTH_FAIL"
    assert client.state == "error: AUTH_FAIL" and client._loop_task.done()  # no more attempts
    assert seen == ["good", "revoked"]
    queued = [await client.queue("t", n) for n in range(2)]  # kept for the next connect
    assert client.queued == 2
    await client.connect("good")
    assert [await future for future in queued] == [0, 1] and handled == [0, 1]
    assert len(refusals) == 1


async def test_a_token_function_that_raises_or_hangs_counts_as_a_failed_attempt(start_server, make_client,
                                                                               monkeypatch):
    monkeypatch.setattr(client_module, "TOKEN_TIMEOUT", 0.2)
    valid, seen, handled = {"ok"}, [], []
    server = await start_server(token_server(valid, seen, handled))
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("auth service down")
        if len(attempts) == 2:
            await asyncio.Event().wait()  # hangs
        return "ok"

    client = make_client(server.url)
    assert await client.connect(flaky, timeout=10) == {"token": "ok"}
    assert len(attempts) == 3 and seen == ["ok"]  # the server never saw the failed attempts


async def test_without_reconnection_a_raising_token_function_fails_connect_clearly(start_server):
    server = await start_server()

    def broken():
        raise RuntimeError("no token")

    client = SxClient(server.url, reconnection=False)
    try:
        with pytest.raises(Exception, match="the token function raised"):
            await client.connect(broken)
    finally:
        await client.close()
