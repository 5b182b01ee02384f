"""What a client can put on the wire, as hypothesis strategies, and what the
server must answer to it.

A :class:`Frame` is one request (its first text frame asks for an ack; the
ack id is filled in when it is sent, so every send has a fresh one) plus any
frames that follow it (binary attachments, or text where an attachment is
due). ``must_answer`` frames are well-formed Socket.IO events: they must get
their ack, a close is a failure. The others may also be answered by a clean
close (the server could not read them, or could not tell who to answer).
``extras`` are frames that ask for nothing (a stray binary frame, an event to
another namespace, a second CONNECT, an ack for nothing): the runner sends a
probe request after them, which must be answered or the connection closed.

Text here has no lone surrogates: those are tested on their own
(``test_server_frames.py``), because today they close the connection
instead of getting an error reply (see the report on defect 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from shotx.client import protocol

ROOMS = ("fuzz-room", "lobby")
ROUTES = ("echo", "fail", "meta", protocol.JOIN, protocol.LEAVE)


@dataclass
class Frame:
    head: str  # "42" or "45<n>-": the ack id goes right after it
    body: str
    then: list[str | bytes] = field(default_factory=list)
    extras: list[str | bytes] = field(default_factory=list)  # sent before, asking for nothing
    must_answer: bool = True
    payload: Any = None  # the message event's argument, when the frame is a well-formed request
    kind: str = ""

    def __repr__(self) -> str:  # frames can be 64 KiB; a failure report needs their start
        body = self.body if len(self.body) <= 300 else f"{self.body[:300]}...({len(self.body)} chars)"
        return (f"Frame({self.kind!r}, {self.head!r} + ack + {body!r}, then={self.then!r:.300}, "
                f"extras={self.extras!r:.300})")

    def first(self, ack_id: int) -> str:
        return f"{self.head}{ack_id}{self.body}"

    def payload_data(self) -> Any:
        return json.loads(self.body)[1]["data"]


text = st.text(st.characters(codec="utf-8"), max_size=12)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)
rooms = st.sampled_from(ROOMS) | json_values
sinces = (st.none() | st.integers(-3, 20) | st.sampled_from([2**53, 2**64, -(2**63)]) | st.booleans()
          | st.floats(allow_nan=False, allow_infinity=False) | text)
room_data = st.fixed_dictionaries({}, optional={"room": rooms, "since": sinces, "extra": json_values})
types = st.sampled_from(ROUTES) | text | json_values
ids = st.sampled_from(["id-1", "id-2", ""]) | text.map(lambda t: f"id-{t}") | json_values


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    """A message event's argument: mostly near-valid envelopes, sometimes anything."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    meta = draw(st.fixed_dictionaries({}, optional={"type": types, "id": ids, "resend": json_values,
                                                    "extra": json_values}) | json_values)
    if isinstance(meta, dict) and meta.get("type") in (protocol.JOIN, protocol.LEAVE):
        data = draw(room_data | json_values)
    else:
        data = draw(json_values)
    return draw(st.fixed_dictionaries({"meta": st.just(meta), "data": st.just(data)})
                | st.fixed_dictionaries({"meta": st.just(meta)}))


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


requests = payloads().map(lambda p: Frame("42", _encode([protocol.MESSAGE_EVENT, p]), payload=p, kind="request"))
arity = st.one_of(
    st.just(Frame("42", _encode([protocol.MESSAGE_EVENT]), kind="no argument")),
    st.tuples(payloads(), st.lists(json_values, min_size=1, max_size=3)).map(
        lambda pe: Frame("42", _encode([protocol.MESSAGE_EVENT, pe[0], *pe[1]]), kind="extra arguments")))
# An event that is not [name, ...], or a name a client may not use. Bodies
# never start with a digit or "-", which would be read as the ack id or an
# attachment count (a real client cannot send such a body).
not_events = (st.dictionaries(text, json_values, max_size=3) | text | st.none() | st.booleans()
              | st.lists(st.integers() | st.none() | st.lists(json_values, max_size=2), max_size=3)
              | st.tuples(st.sampled_from(["connect", "disconnect"]), payloads()).map(list))
shapes = not_events.map(lambda body: Frame("42", _encode(body), kind="not an event"))
garbage = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(
    lambda t: t[0] not in "0123456789-").map(lambda t: Frame("42", t, must_answer=False, kind="garbage"))
broken_json = payloads().flatmap(lambda p: st.integers(1, len(_encode([protocol.MESSAGE_EVENT, p])) - 1).map(
    lambda cut: Frame("42", _encode([protocol.MESSAGE_EVENT, p])[:cut], must_answer=False, kind="truncated")))


@st.composite
def deep(draw: st.DrawFn) -> Frame:
    depth = draw(st.sampled_from([10, 500, 990, 1000, 2000, 5000, 9000, 10_000, 20_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = opener * depth + "0" + closer * depth
    where = draw(st.sampled_from(["data", "payload"]))
    if where == "data":
        body = f'["message",{{"meta":{{"type":"echo","id":"deep-{depth}-{opener}"}},"data":{nested}}}]'
    else:
        body = f'["message",{nested}]'
    return Frame("42", body, must_answer=False, kind=f"nested {depth} deep in the {where}")


@st.composite
def binary(draw: st.DrawFn) -> Frame:
    """A binary event: announced attachments, placeholders, then what follows."""
    count = draw(st.integers(0, 3))
    placeholder = {"_placeholder": True, "num": draw(st.integers(-1, 4) | st.sampled_from(["0", None, True]))}
    payload = {"meta": {"type": draw(st.sampled_from(["echo", "nope"])), "id": draw(ids)}, "data": placeholder}
    # Text frames here are Engine.IO messages ("4..."): Engine.IO-level garbage is tested on its own.
    follow = draw(st.lists(st.binary(max_size=16) | text.map(lambda t: "4" + t), min_size=count, max_size=count + 1))
    return Frame(f"45{count}-", _encode([protocol.MESSAGE_EVENT, payload]), then=follow, must_answer=False,
                 payload=payload, kind="binary event")


extras = st.lists(st.one_of(
    st.binary(min_size=1, max_size=16),  # binary where text is expected
    payloads().map(lambda p: "42/elsewhere,7" + _encode([protocol.MESSAGE_EVENT, p])),  # a namespace never joined
    json_values.map(lambda v: "439" + _encode([v])),  # an ack nobody asked for
    st.just('40{"token":"valid"}'),  # CONNECT again on a connected namespace
    st.sampled_from(["44", "49", "4", "47[]"]),  # packet types a client may not send
    st.sampled_from(["460-3[1]", '460-[{"_placeholder":true,"num":0}]']),  # a binary ack of no attachments
), min_size=1, max_size=2)
with_extras = st.tuples(extras, requests).map(
    lambda er: Frame(er[1].head, er[1].body, extras=er[0], must_answer=False, payload=er[1].payload,
                     kind="after frames asking for nothing"))


def frames() -> st.SearchStrategy[Frame]:
    return st.one_of(requests, requests, arity, shapes, garbage, broken_json, deep(), binary(), with_extras)


FAR_OVER = 1024  # a frame this far over the limit is over it whatever framing headroom the server allows


def sized(limit: int) -> st.SearchStrategy[Frame]:
    """Echo requests whose frame is within a few bytes of the server's size limit, or far over it."""
    overhead = len('421["message",{"meta":{"type":"echo","id":"size"},"data":""}]')
    def frame(n: int) -> Frame:
        payload = {"meta": {"type": "echo", "id": f"size-{n}"}, "data": "x" * n}
        return Frame("42", _encode([protocol.MESSAGE_EVENT, payload]), must_answer=False, payload=payload,
                     kind="near the size limit")
    near = st.integers(limit - overhead - 64, limit - overhead + 64)
    return (near | st.integers(limit + FAR_OVER, 2 * limit)).map(frame)
