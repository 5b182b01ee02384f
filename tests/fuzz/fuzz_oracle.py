"""What the fuzz server must answer, written from the Shotx contract (not from
the server's code): the checks a reply must pass, and the exact reply a
well-formed request gets from the fuzz routes (``conftest.start_fuzz_server``).
"""

from __future__ import annotations

from typing import Any

from shotx.client import protocol

CODES = {protocol.INVALID_FORMAT, protocol.INVALID_TYPE, protocol.UNKNOWN_TYPE, protocol.HANDLER_ERROR}
MAX_SQL_INT = 2**63 - 1


def check_envelope(args: Any) -> dict[str, Any]:
    """An ack is one Shotx reply: ``{"meta":{"success":true},"data":...}`` or an error with a code and a text."""
    assert isinstance(args, list) and len(args) == 1, f"an ack carries one reply, got {args!r}"
    reply = args[0]
    assert isinstance(reply, dict) and isinstance(reply.get("meta"), dict), f"not a reply: {reply!r}"
    meta = reply["meta"]
    assert meta.get("success") in (True, False), f"success must be a bool: {reply!r}"
    if meta["success"] is False:
        assert meta.get("code") in CODES, f"unknown code: {reply!r}"
        assert isinstance(meta.get("error"), str) and meta["error"], f"an error needs a text: {reply!r}"
        assert reply.get("data") is None, f"an error carries no data: {reply!r}"
    return reply


def is_room(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def is_since(value: Any) -> bool:
    return value is None or (type(value) is int and value >= 0)


class Oracle:
    """The expected reply of each request, remembering replies by id as the
    server must (a handler runs once per message id; a repeat gets the first reply)."""

    def __init__(self) -> None:
        self.remembered: dict[str, dict[str, Any]] = {}
        self.uncertain: set[str] = set()  # ids whose first run we cannot know (the connection closed)

    @staticmethod
    def remembered_id(payload: Any) -> str | None:
        """The id the server remembers a reply under, or None (built-ins and unknown types are not)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
            return None
        meta = payload["meta"]
        if meta.get("type") not in ("echo", "fail", "meta") or not isinstance(meta.get("id"), str):
            return None
        return meta["id"] or None

    def forget_outcome(self, payload: Any) -> None:
        """The request may or may not have run."""
        message_id = self.remembered_id(payload)
        if message_id is not None and message_id not in self.remembered:
            self.uncertain.add(message_id)

    def check(self, payload: Any, reply: dict[str, Any]) -> None:
        message_id = self.remembered_id(payload)
        if message_id in self.uncertain:
            return
        if message_id in self.remembered:
            assert reply == self.remembered[message_id], "a repeated id must get the first reply"
            return
        self._check_fresh(payload, reply)
        if message_id is not None:
            self.remembered[message_id] = reply

    def _check_fresh(self, payload: Any, reply: dict[str, Any]) -> None:
        code = reply["meta"].get("code")
        if not isinstance(payload, dict):
            assert code == protocol.INVALID_FORMAT, reply
            return
        meta = payload.get("meta")
        if not isinstance(meta, dict) or not isinstance(meta.get("type"), str):
            assert code == protocol.INVALID_TYPE, reply
            return
        type_, data = meta["type"], payload.get("data")
        if type_ == "echo":
            assert reply == protocol.success(data), reply
        elif type_ == "meta":
            assert reply == protocol.success(meta), reply
        elif type_ == "fail":
            assert reply == protocol.failure(protocol.HANDLER_ERROR, "refused by the fuzz route"), reply
        elif type_ in (protocol.JOIN, protocol.LEAVE):
            self._check_room_request(type_, data, reply)
        else:
            assert reply == protocol.unknown_type(type_), reply

    @staticmethod
    def _check_room_request(type_: str, data: Any, reply: dict[str, Any]) -> None:
        valid = isinstance(data, dict) and is_room(data.get("room"))
        if type_ == protocol.JOIN:
            valid = valid and is_since(data.get("since"))
        if not valid:
            assert reply["meta"].get("code") == protocol.HANDLER_ERROR, reply
            return
        assert reply["meta"]["success"] is True, f"{type_} {data!r}: {reply!r}"
        assert reply["data"]["room"] == data["room"], reply
