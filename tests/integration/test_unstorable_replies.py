"""A message id or reply that no store can keep gets a clear ack, and the socket lives on.

JSON carries a lone UTF-16 surrogate (``"\\ud800"``); UTF-8, and so SQLite,
Redis and a WebSocket text frame, cannot. Since an ack waits for its reply's
commit, such text must never reach the store: a failing commit would hold
the ack (on SQLite, every ack sharing that commit) for good.
"""

from __future__ import annotations

import pytest

from shotx.client import protocol
from shotx.server import RedisStore, SqliteStore

LONE = "\ud800"
MODES = pytest.mark.parametrize("at_most_once", [False, True], ids=["default", "at_most_once"])


def echo(sx) -> None:
    sx.on_message("echo", lambda data, socket: data)


async def check_unstorable_text_is_answered(server, raw_client) -> None:
    sio = await raw_client(server.url)
    bad_id = await sio.call("message", protocol.request("echo", 1, f"id-{LONE}"), timeout=5)
    assert bad_id["meta"]["success"] is False and bad_id["meta"]["code"] == protocol.INVALID_FORMAT
    resent = await sio.call("message", protocol.request("echo", 1, f"id-{LONE}", resend=True), timeout=5)
    assert resent == bad_id
    bad_reply = await sio.call("message", protocol.request("echo", {"text": LONE}, "ok-id"), timeout=5)
    assert bad_reply["meta"]["success"] is False and bad_reply["meta"]["code"] == protocol.HANDLER_ERROR
    assert "lone UTF-16 surrogate" in bad_reply["meta"]["error"]
    after = await sio.call("message", protocol.request("echo", 2, "after-id"), timeout=5)
    assert after == {"meta": {"success": True}, "data": 2}  # same socket, same store: nothing stuck


@MODES
async def test_unstorable_text_on_sqlite(at_most_once, start_server, raw_client, tmp_path):
    server = await start_server(echo, store=SqliteStore(tmp_path / "s.sqlite3"), at_most_once=at_most_once)
    await check_unstorable_text_is_answered(server, raw_client)


@MODES
async def test_unstorable_text_on_redis(at_most_once, redis_prefix, redis_url, start_server, raw_client):
    server = await start_server(echo, store=RedisStore(redis_url, prefix=redis_prefix), at_most_once=at_most_once)
    await check_unstorable_text_is_answered(server, raw_client)
