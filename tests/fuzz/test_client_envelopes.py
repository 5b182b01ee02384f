"""The client's parsing of what a server sends, with arbitrary JSON.

Incoming ``message`` events go through the real :class:`Inbox` (with the
real in-memory client store) on a real event loop; acks go through
:func:`reply_data`. What must hold: nothing escapes the inbox loop (a
valid message sent after any garbage is still handled), a handler sees
exactly the data and meta that arrived, ``reply_data`` either returns the
data of a success or raises an :class:`SxError`, and, the part marked
``xfail`` below until ``inbox.py``/``core.py`` check it: a malformed message
never reaches a handler as if valid and never moves a room's offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from shotx.client.errors import MessageError, SxError
from shotx.client.inbox import Inbox
from shotx.client.sender import reply_data
from shotx.client.store import MemoryStore

from fuzz_frames import json_values, text
from fuzz_server import INPUTS, SCALE, LoopThread, examples

pytestmark = pytest.mark.timeout(int(120 * max(1.0, SCALE)))  # a longer hunt (SHOTX_FUZZ_SCALE) gets longer

ROOMS = {"r1": None, "r2": 5}
LAST = {"meta": {"type": "t", "id": "last-message"}, "data": "last"}


def valid_meta(meta: Any) -> bool:
    """A server message's meta as the wire summary in ``protocol.py`` defines it."""
    if not isinstance(meta, dict) or not isinstance(meta.get("type"), str) or not meta["type"]:
        return False
    if "id" in meta and not isinstance(meta["id"], str):
        return False
    if "room" in meta or "offset" in meta:
        return isinstance(meta.get("room"), str) and type(meta.get("offset")) is int and meta["offset"] >= 0
    return True


metas = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["t", "u", "boom", "5"]) | json_values,
    "id": text | json_values,
    "room": st.sampled_from(list(ROOMS)) | json_values,
    "offset": st.integers(-2, 12) | json_values,
}) | json_values
messages = (st.fixed_dictionaries({"meta": metas}, optional={"data": json_values}) | json_values)


class Fed:
    """What one batch of messages did to a fresh inbox."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.offsets: list[dict[str, Any]] = []
        self.failures: list[str] = []


class _Failures(logging.Handler):
    def __init__(self, fed: Fed) -> None:
        super().__init__(logging.ERROR)
        self.fed = fed

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "handling an incoming message failed":
            self.fed.failures.append(repr(record.exc_info[1] if record.exc_info else None))


async def feed(batch: list[Any]) -> Fed:
    fed, store = Fed(), MemoryStore()
    inbox = Inbox(store)
    for room, offset in ROOMS.items():
        inbox.rooms.join(room)
        inbox.rooms.offsets[room] = offset
        await store.save_room(room, offset)

    def handler(name: str) -> Any:
        def record(data: Any, meta: Any) -> None:
            fed.calls.append((name, data, meta))
            fed.offsets.append(dict(inbox.rooms.offsets))
            if name == "boom":
                raise RuntimeError("a handler that raises")
        return record
    for name in ("t", "u", "boom", "5"):
        inbox.on(name, handler(name))
    watcher = _Failures(fed)
    logging.getLogger("shotx.client").addHandler(watcher)
    try:
        for message in [*batch, LAST]:
            inbox.put(message)
        await asyncio.wait_for(inbox.drained(), 10)
        fed.offsets.append(dict(inbox.rooms.offsets))
    finally:
        logging.getLogger("shotx.client").removeHandler(watcher)
        await inbox.stop()
    return fed


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@settings(max_examples=examples(500))
@given(batch=st.lists(messages, max_size=6))
def test_nothing_escapes_the_inbox_and_handlers_get_what_arrived(loop: LoopThread, batch: list[Any]) -> None:
    fed = loop.run(feed(batch))
    INPUTS["client: incoming messages"] += len(batch) + 1
    name, data, meta = fed.calls[-1]
    assert (name, data, meta) == ("t", "last", LAST["meta"]), "a message after the batch was not handled"
    arrived = [m for m in batch if isinstance(m, dict) and isinstance(m.get("meta"), dict)]
    for name, data, meta in fed.calls[:-1]:
        assert any(m["meta"] is meta and m.get("data") is data for m in arrived), (name, data, meta)


@settings(max_examples=examples(300), phases=[Phase.generate])  # no shrinking: the pinned cases below are minimal
@given(batch=st.lists(messages, max_size=6))
def test_a_malformed_message_never_reaches_a_handler_or_an_offset(loop: LoopThread, batch: list[Any]) -> None:
    fed = loop.run(feed(batch))
    assert fed.failures == [], "the inbox failed on a message after (or instead of) deciding it was malformed"
    for name, _, meta in fed.calls:
        assert valid_meta(meta), f"handler {name!r} got a malformed message: {meta!r}"
    for offsets in fed.offsets:
        assert all(value is None or type(value) is int for value in offsets.values()), offsets


@pytest.mark.parametrize("meta", [
    {"type": 5, "id": "a"},
    {"type": "t", "id": "b", "room": "r1", "offset": 2.5},
    {"type": "t", "id": "c", "room": "r1", "offset": True},
    {"type": "t", "id": "d", "room": "r2", "offset": "7"},
    {"type": "t", "id": ["unhashable"]},
], ids=["int type", "float offset", "bool offset", "str offset", "list id"])
def test_each_malformed_meta_found_is_refused(loop: LoopThread, meta: dict[str, Any]) -> None:
    fed = loop.run(feed([{"meta": meta, "data": "x"}]))
    assert [call[2] for call in fed.calls] == [LAST["meta"]] and fed.failures == []
    assert fed.offsets[-1] == ROOMS


replies = (st.fixed_dictionaries({"meta": st.fixed_dictionaries({}, optional={
    "success": st.booleans() | json_values, "code": st.sampled_from([2001, 2004]) | json_values,
    "error": text | json_values})}, optional={"data": json_values}) | json_values)


@settings(max_examples=examples(500))
@given(batch=st.lists(replies, min_size=4, max_size=12))
def test_reply_data_returns_a_success_or_raises_an_sx_error(batch: list[Any]) -> None:
    for reply in batch:
        returns_a_success_or_raises_an_sx_error(reply)
    INPUTS["client: acks"] += len(batch)


def returns_a_success_or_raises_an_sx_error(reply: Any) -> None:
    try:
        data = reply_data(reply)
    except MessageError as error:
        assert error.reply is reply
        return
    except SxError as error:
        assert error.code == "INVALID_REPLY"
        return
    assert isinstance(reply, dict) and reply["meta"].get("success") and data is reply.get("data")


@settings(max_examples=examples(300), phases=[Phase.generate])  # no shrinking for a known failure
@given(reply=replies)
def test_reply_data_takes_only_a_well_formed_reply(reply: Any) -> None:
    try:
        reply_data(reply)
    except MessageError as error:
        assert type(error.code) is int and isinstance(error.message, str), (error.code, error.message)
        return
    except SxError:
        return
    assert reply["meta"]["success"] is True, f"{reply!r} was taken as a success"
