"""The transport contract (``browser_client/transport.py``) as cases that any
transport must pass, written once and run against both adapters:

* ``SocketioTransport`` in CPython: ``tests/contract/test_transport_contract.py``;
* ``JsTransport`` in Chromium: ``tests/browser/test_transport_contract_js.py``
  hands this file's text to the page's Pyodide and calls :func:`run_in_browser`.

So this module imports only ``shotx.client`` and the standard library. Each
case gets an :class:`Env`: a real demo server (``python -m shotx.server``),
a way to publish to one of its rooms over HTTP, and ``drop()``, which
SIGKILLs the server: a connection that ends without the client asking.
"""

from __future__ import annotations

import asyncio
import json
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shotx.client import protocol
from shotx.client.errors import AuthError, ConnectError

WAIT = 10.0  # seconds for anything a live loopback server answers at once
PATH = "/shotx/"


@dataclass
class Env:
    url: str  # a live demo server (token "valid" is accepted)
    dead_url: str  # nothing listens there
    make_transport: Callable[[], Any]
    publish: Callable[[str, dict[str, Any]], Awaitable[None]]  # POST /demo/publish?room=
    drop: Callable[[], Awaitable[None]]  # SIGKILL the server at ``url``


class Probe:
    """One transport and everything it reported, in order."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.events: list[tuple[str, Any]] = []
        self.acks_after_disconnect: list[Any] = []
        self.disconnecting = False
        self._changed = asyncio.Event()

    def on_event(self, name: str, payload: Any) -> None:
        self.events.append((name, payload))
        self._changed.set()

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def numbers(self) -> list[Any]:
        """The ``n`` of each room message reported."""
        return [(p.get("data") or {}).get("n") for name, p in self.events
                if name == protocol.MESSAGE_EVENT and isinstance(p, dict)]

    async def connect(self, url: str, token: str = "valid") -> None:
        await self.transport.connect(url, PATH, {"token": token}, self.on_event)

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait for a report that makes ``predicate`` true (no polling)."""
        async def reported() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(reported(), WAIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within {WAIT}s; reported: {self.events}") from None

    async def request(self, type_: str, data: Any) -> Any:
        """Emit with an ack and return the reply."""
        replied: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.transport.emit(protocol.MESSAGE_EVENT, protocol.request(type_, data),
                                  lambda reply: replied.done() or replied.set_result(reply))
        try:
            return await asyncio.wait_for(replied, WAIT)
        except asyncio.TimeoutError:
            raise AssertionError(f"no ack for {type_} within {WAIT}s") from None

    async def emit_unawaited(self, type_: str, data: Any) -> None:
        """Emit with an ack nobody waits for; an ack after disconnect() is recorded."""
        def acked(reply: Any) -> None:
            if self.disconnecting:
                self.acks_after_disconnect.append(reply)
        await self.transport.emit(protocol.MESSAGE_EVENT, protocol.request(type_, data), acked)

    async def join(self, room: str) -> None:
        reply = await self.request(protocol.JOIN, {"room": room})
        assert reply["meta"]["success"], reply

    async def disconnect(self) -> None:
        self.disconnecting = True
        await self.transport.disconnect()


def new_room() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


async def expect_raises(kind: type[BaseException], call: Awaitable[Any]) -> BaseException:
    try:
        await call
    except kind as error:
        return error
    raise AssertionError(f"expected {kind.__name__}")


# ----------------------------------------------------------------------- the cases


async def connect_reports_auth_success(env: Env) -> None:
    probe = Probe(env.make_transport())
    await probe.connect(env.url)
    await probe.until(lambda: protocol.AUTH_SUCCESS_EVENT in probe.names(), "auth_success")
    assert dict(probe.events)[protocol.AUTH_SUCCESS_EVENT] == {"user_id": "user123"}
    await probe.disconnect()


async def refused_token_raises_auth_error(env: Env) -> None:
    probe = Probe(env.make_transport())
    error = await expect_raises(AuthError, probe.connect(env.url, token="wrong"))
    assert getattr(error, "code", None) == protocol.AUTH_FAIL, error
    await expect_raises(ConnectError, probe.request("test_route", {}))
    assert probe.names() == [], probe.events


async def unreachable_server_raises_connect_error(env: Env) -> None:
    probe = Probe(env.make_transport())
    error = await expect_raises(ConnectError, probe.connect(env.dead_url))
    assert not isinstance(error, AuthError), error
    assert probe.names() == [], probe.events


async def acks_and_room_messages_are_reported(env: Env) -> None:
    probe, room = Probe(env.make_transport()), new_room()
    await probe.connect(env.url)
    reply = await probe.request("test_route", {"text": "hi"})
    assert reply["meta"]["success"] and reply["data"]["data"] == {"text": "hi"}, reply
    await probe.join(room)
    await env.publish(room, {"n": 1})
    await probe.until(lambda: probe.numbers() == [1], "room message")
    await probe.disconnect()


async def own_disconnect_reports_nothing(env: Env) -> None:
    """After disconnect(): no "disconnect", no message, no ack; emit raises."""
    leaving, staying, room = Probe(env.make_transport()), Probe(env.make_transport()), new_room()
    for probe in (leaving, staying):
        await probe.connect(env.url)
        await probe.join(room)
    await leaving.emit_unawaited("test_route", {"text": "ack due after disconnect"})
    await leaving.disconnect()
    await env.publish(room, {"n": 2})
    await staying.until(lambda: staying.numbers() == [2], "room message on the other connection")
    await staying.request("test_route", {"text": "one more round trip"})  # time for late reports
    assert "disconnect" not in leaving.names(), leaving.events
    assert leaving.numbers() == [], leaving.events
    assert leaving.acks_after_disconnect == [], leaving.acks_after_disconnect
    await expect_raises(ConnectError, leaving.request("test_route", {}))
    await leaving.disconnect()  # a second call is harmless
    await staying.disconnect()


async def drop_is_reported_once(env: Env) -> None:
    """The server dies: one "disconnect" report; then disconnect() adds none."""
    probe = Probe(env.make_transport())
    await probe.connect(env.url)
    await probe.join(new_room())
    await env.drop()
    await probe.until(lambda: "disconnect" in probe.names(), "disconnect report")
    await probe.disconnect()
    assert probe.names().count("disconnect") == 1, probe.events
    await expect_raises(ConnectError, probe.request("test_route", {}))


#: Every case, in the order they run; the last one kills its server.
CASES: dict[str, Callable[[Env], Awaitable[None]]] = {case.__name__: case for case in (
    connect_reports_auth_success,
    refused_token_raises_auth_error,
    unreachable_server_raises_connect_error,
    acks_and_room_messages_are_reported,
    own_disconnect_reports_nothing,
    drop_is_reported_once,
)}
KILLS_SERVER = {"drop_is_reported_once"}


# ----------------------------------------------------------------- in the browser


async def run_in_browser(name: str, url: str, dead_url: str) -> str:
    """Run one case against JsTransport in Pyodide; JSON ``{"outcome", "detail"}``.

    ``window.shotxContractDrop()`` (a Playwright binding) kills the server.
    """
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    from shotx.client.js_transport import JsTransport

    async def publish(room: str, data: dict[str, Any]) -> None:
        options = to_js({"method": "POST", "body": json.dumps(data),
                         "headers": {"Content-Type": "application/json"}}, dict_converter=js.Object.fromEntries)
        response = await js.fetch(f"{url}/demo/publish?room={room}", options)
        assert response.ok, f"publish answered {response.status}"

    async def drop() -> None:
        await js.window.shotxContractDrop()

    env = Env(url, dead_url, JsTransport, publish, drop)
    try:
        await CASES[name](env)
    except BaseException:  # noqa: BLE001 - reported to the test, which fails
        return json.dumps({"outcome": "failed", "detail": traceback.format_exc()})
    return json.dumps({"outcome": "passed", "detail": ""})
