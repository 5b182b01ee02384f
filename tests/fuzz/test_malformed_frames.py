"""Each frame the fuzzer found without a reply, pinned as a plain example.

Every case here got no ack at all before ``packets.py`` refused undecodable
frames and ``_on_message`` took extra arguments (the client waited for
ever, and python-socketio logged a traceback). The ``xfail(strict=True)``
cases are defects found outside the files the fuzzing change may touch,
reported for their owners: each turns into a failure (XPASS) the day it is
fixed, so its mark is removed then.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from shotx.client import SxClient, binary, protocol
from shotx.server.packets import MalformedFrame

from fuzz_server import MAX_MESSAGE_SIZE, SCALE, CrashLog, FuzzServer, LoopThread, start_fuzz_server
from raw_socketio import Closed, RawSocket

pytestmark = pytest.mark.timeout(int(60 * max(1.0, SCALE)))  # a longer hunt (SHOTX_FUZZ_SCALE) gets longer

ECHO = '{"meta":{"type":"echo","id":"pinned-%d"},"data":%s}'
INVALID = 2001

ANSWERED = {  # frame -> the text the 2001 reply must contain
    '42{ack}["message",{"meta":{"type":"echo"},"data":1},"extra"]': "one argument expected, got 2",
    '42{ack}["message",' + "[" * 10_000 + "]" * 10_000 + "]": "RecursionError",
    '42{ack}["message",{"meta":{"type":"echo","id":"x"},"data":' + "[" * 10_000 + "]" * 10_000 + "}]": "RecursionError",
    '42{ack}["message",{bad json': "JSONDecodeError",
    "42{ack}[]": "JSON array starting with its name",
    '42{ack}{"meta":{}}': "JSON array starting with its name",
    "42{ack}[5]": "JSON array starting with its name",
    '42{ack}["connect",{"token":"valid"}]': "may not send an event named 'connect'",
    '42{ack}["disconnect","forged"]': "may not send an event named 'disconnect'",
    '450-{ack}["message",{"meta":{"type":"echo"},"data":{"_placeholder":true,"num":0}}]': "placeholder",
}


@pytest.fixture(scope="module")
def server(loop_thread: LoopThread, crash_log: CrashLog) -> Iterator[FuzzServer]:
    running = loop_thread.run(start_fuzz_server("memory"))
    yield running
    loop_thread.run(running.runner.cleanup())


@pytest.fixture(autouse=True)
def fresh_crash_log(crash_log: CrashLog) -> None:
    """Each test judges only what it logged itself (the xfail cases below log tracebacks)."""
    crash_log.take()


def exchange(thread: LoopThread, server: FuzzServer, frames: list[str | bytes], wait: float = 3.0) -> Any:
    """Send ``frames`` ({ack} in the first is the ack id) on a new connection: the ack, or Closed."""
    async def go() -> Any:
        raw = await RawSocket.connect(server.url)
        try:
            future = raw.expect_ack(1)
            for frame in frames:
                if isinstance(frame, bytes):
                    await raw.send_bytes(frame)
                else:
                    await raw.send_text(frame.replace("{ack}", "1", 1))
            try:
                return await asyncio.wait_for(future, wait)
            except Closed as closed:
                closed.clean = raw.clean_close
                return closed
        finally:
            await raw.close()
    return thread.run(go())


@pytest.mark.parametrize("frame", list(ANSWERED), ids=lambda f: f[:40])
def test_an_undecodable_request_gets_an_invalid_format_reply(loop_thread: LoopThread, server: FuzzServer,
                                                            crash_log: CrashLog, frame: str) -> None:
    [reply] = exchange(loop_thread, server, [frame])
    assert reply["meta"]["success"] is False and reply["meta"]["code"] == INVALID and reply["data"] is None
    assert ANSWERED[frame] in reply["meta"]["error"]
    assert crash_log.take() == []


@pytest.mark.parametrize("frames", [
    [b"\x00\x01binary where text is expected"],
    [b""],  # python-socketio skips decoding an empty frame and then fails on it
    ["4null"],  # Engine.IO parses it as JSON: python-socketio gets None, skips decoding it and fails
    ["44"],  # CONNECT_ERROR: a server's packet, not a client's
    ["49"],  # no such packet type
    ['451-{ack}["message",{"meta":{"type":"echo"},"data":{"_placeholder":true,"num":0}}]', "4text, not binary"],
], ids=["binary", "empty binary", "engine.io null", "connect_error", "type 9", "text as attachment"])
def test_a_frame_nobody_can_be_answered_for_closes_the_connection(loop_thread: LoopThread, server: FuzzServer,
                                                                  crash_log: CrashLog, frames: list[str | bytes]) -> None:
    closed = exchange(loop_thread, server, frames)
    assert isinstance(closed, Closed) and closed.clean, closed
    assert crash_log.take() == []


def test_a_binary_ack_without_attachments_does_not_swallow_the_next_frame(loop_thread: LoopThread,
                                                                         server: FuzzServer) -> None:
    """python-socketio waits for the first of no attachments and takes every later frame as one."""
    reply = exchange(loop_thread, server, ["460-5[1]", '42{ack}["message",{"meta":{"type":"echo"},"data":2}]'])
    assert reply == [{"meta": {"success": True}, "data": 2}]


def test_attachments_that_match_the_placeholders_still_arrive(loop_thread: LoopThread, server: FuzzServer) -> None:
    """The refusals leave real binary events alone: the echo of bytes comes back as a binary ack, not a close."""
    [reply] = exchange(loop_thread, server, [
        '451-{ack}["message",{"meta":{"type":"echo","id":"bin-ok"},"data":{"_placeholder":true,"num":0}}]', b"\x01"])
    assert reply == {"meta": {"success": True}, "data": b"\x01"}
    assert server.handled[-1] == b"\x01"


def test_an_event_with_another_name_gets_an_error_reply(loop_thread: LoopThread, server: FuzzServer) -> None:
    [reply] = exchange(loop_thread, server, ['42{ack}["nope",{"meta":{"type":"echo"},"data":1}]'], wait=1.0)
    assert reply["meta"]["success"] is False


def test_a_request_with_a_lone_surrogate_gets_a_reply(loop_thread: LoopThread, server: FuzzServer) -> None:
    result = exchange(loop_thread, server, ['42{ack}["message",' + ECHO % (1, '"\\ud800"') + "]"], wait=2.0)
    assert isinstance(result, list), result


def test_a_payload_the_client_accepts_gets_its_reply(loop_thread: LoopThread, server: FuzzServer) -> None:
    empty = binary.encoded_size({"meta": {"type": "echo", "id": protocol.uuid7()}, "data": ""})
    data = "x" * (MAX_MESSAGE_SIZE - empty)  # exactly the client's limit: its own check lets it go

    async def go() -> Any:
        client = SxClient(server.url, max_message_size=MAX_MESSAGE_SIZE, reconnection_delay=0.05,
                          reconnection_delay_max=0.2)
        try:
            await asyncio.wait_for(client.connect("valid"), 10)
            return await client.send("echo", data, timeout=3)
        finally:
            await client.close()
    assert loop_thread.run(go()) == data


@pytest.mark.parametrize("frame", ["", "x"], ids=["empty text", "not an engine.io type"])
def test_engineio_garbage_leaves_no_ghost_socket(loop_thread: LoopThread, server: FuzzServer, frame: str) -> None:
    closed = exchange(loop_thread, server, [frame])
    assert isinstance(closed, Closed) and closed.clean, closed

    async def gone() -> bool:
        for _ in range(40):
            if not server.sx.sio.eio.sockets:
                return True
            await asyncio.sleep(0.05)
        return False
    assert loop_thread.run(gone()), "the server still holds the closed connection's socket"


def test_refusing_a_connection_already_gone_leaves_the_others_alone(loop_thread: LoopThread,
                                                                    server: FuzzServer) -> None:
    """A refusal that arrives after its connection closed (frames queued behind the first
    refused one run as tasks of their own) must not close anyone else's: Engine.IO's
    ``disconnect(None)`` closes every client, and a gone socket's Engine.IO id is None."""
    async def go() -> Any:
        bystander = await RawSocket.connect(server.url)
        try:
            await server.sx._on_message("a-socket-already-gone", MalformedFrame("late", answerable=False))
            return await bystander.request(1, '421["message",{"meta":{"type":"echo"},"data":"still here"}]', 3)
        finally:
            await bystander.close()
    assert loop_thread.run(go()) == [{"meta": {"success": True}, "data": "still here"}]


def test_a_connect_with_unreadable_auth_is_refused_as_auth_null(loop_thread: LoopThread, server: FuzzServer,
                                                                 crash_log: CrashLog) -> None:
    """Not left waiting for an answer to its handshake (python-socketio would raise decoding it)."""
    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{server.url}/shotx/?EIO=4&transport=websocket") as ws:
                opened = await asyncio.wait_for(ws.receive(), 5)
                assert opened.data.startswith("0")
                await ws.send_str('40{"token": unquoted}')
                return (await asyncio.wait_for(ws.receive(), 5)).data
    answer = loop_thread.run(go())
    assert answer.startswith("44") and json.loads(answer[2:]) == {"message": protocol.AUTH_NULL}
    assert crash_log.take() == []
