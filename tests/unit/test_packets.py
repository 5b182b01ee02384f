"""Frames around pre-encoded JSON are byte for byte what python-socketio would send."""

from __future__ import annotations

import json

import pytest
import socketio
from hypothesis import given
from hypothesis import strategies as st

from shotx.client import protocol
from shotx.server.packets import JsonText, SxPacket, message_frame

REPLY = {"meta": {"success": True}, "data": {"text": "héllo", "n": [1, 2.5, None]}}


@pytest.mark.parametrize("namespace", [None, "/", "/chat"])
def test_an_ack_of_json_text_encodes_as_the_stock_ack_of_the_value(namespace):
    stock = socketio.packet.Packet(socketio.packet.ACK, data=[REPLY], namespace=namespace, id=12)
    ours = SxPacket(socketio.packet.ACK, data=[JsonText(protocol.encode_json(REPLY))], namespace=namespace, id=12)
    our_head, _, our_payload = ours.encode().partition("[")
    stock_head, _, stock_payload = stock.encode().partition("[")
    assert our_head == stock_head and our_head.startswith("3") and our_head.endswith("12")
    assert json.loads("[" + our_payload) == json.loads("[" + stock_payload) == [REPLY]
    assert ours.data == [JsonText(protocol.encode_json(REPLY))]  # encoding leaves the packet as it was


def test_everything_else_encodes_exactly_as_the_stock_packet():
    for data in ([REPLY], ["message", REPLY], ["plain string, not JsonText"], None, [b"\x00binary"]):
        stock = socketio.packet.Packet(socketio.packet.EVENT, data=data, id=3)
        ours = SxPacket(socketio.packet.EVENT, data=data, id=3)
        assert ours.encode() == stock.encode()


def test_a_room_message_frame_is_the_event_python_socketio_would_emit():
    message = protocol.room_message("t", {"a": 1}, "id-1", "lobby", 7)
    stock = socketio.packet.Packet(socketio.packet.EVENT, data=[protocol.MESSAGE_EVENT, message])
    frame = message_frame(protocol.room_message_json("t", protocol.encode_json({"a": 1}), "id-1", "lobby", 7))
    assert frame.data[0] == stock.encode()[0]
    assert json.loads(frame.data[1:]) == json.loads(stock.encode()[1:])


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)
_TEXTS = st.one_of(_JSON_VALUES.map(json.dumps), st.text(max_size=40),
                   st.integers(min_value=10**98, max_value=10**102).map(lambda n: f'["message",{n}]'),
                   _JSON_VALUES.map(lambda value: "\ufeff" + json.dumps(value)))


@given(_TEXTS)
def test_the_decoder_made_once_reads_every_text_as_engineios_json(text):
    """ServerJson.loads (one decoder for every frame) against engine.io's loads (a decoder per
    call): the same value, or both refuse (integers of over 100 digits too)."""
    from engineio import json as engineio_json

    from shotx.server.packets import ServerJson

    def reading(loads):
        try:
            return "read", repr(loads(text))
        except ValueError:
            return "refused", None

    assert reading(ServerJson.loads) == reading(engineio_json.loads)
    assert SxPacket.json is ServerJson


def test_a_frame_with_an_integer_of_over_100_digits_is_refused_as_engine_io_refuses_it():
    frame = SxPacket(encoded_packet='21["message",' + "9" * 101 + "]")
    assert frame.id == 1 and "Integer is too large" in frame.data[1].reason
    assert SxPacket(encoded_packet='21["message",' + "9" * 100 + "]").data == ["message", int("9" * 100)]


_FRAMES = st.one_of(
    st.tuples(st.sampled_from(["2", "21", "2007", "2" + "9" * 100, "2" + "9" * 101, "2/chat,3", "20-", "3",
                               "2١", "25-"]),
              st.one_of(_JSON_VALUES.map(lambda value: json.dumps(["message", value])), st.text(max_size=12)))
    .map("".join),
    st.text(max_size=30))


def _read(frame):
    packet = SxPacket(encoded_packet=frame)
    return packet.packet_type, packet.namespace, packet.id, repr(packet.data), packet.attachment_count


@given(_FRAMES)
def test_the_plain_event_reading_is_python_socketios_reading(frame):
    """SxPacket.decode reads ``2<id>[...]`` itself: every frame must read as through python-socketio's decode."""
    import re

    from shotx.server import packets

    ours = _read(frame)
    plain, packets._PLAIN_EVENT = packets._PLAIN_EVENT, re.compile(r"(?!)")  # never matches: the stock path
    try:
        stock = _read(frame)
    finally:
        packets._PLAIN_EVENT = plain
    assert ours == stock


@pytest.mark.parametrize("ack_id", [0, 7, 12345678901234567890])
def test_an_ack_of_a_reply_encodes_without_a_packet_as_with_one(ack_id):
    reply = JsonText(protocol.encode_json(REPLY))
    made = SxPacket(socketio.packet.ACK, data=[reply], namespace="/", id=ack_id).encode()
    assert SxPacket.encoded_ack(ack_id, [reply]) == made
    assert SxPacket.encoded_ack(ack_id, [reply, reply]) is None and SxPacket.encoded_ack(ack_id, [REPLY]) is None


def _every_attribute(packet):
    return {name: repr(getattr(packet, name)) for name in
            ("packet_type", "namespace", "id", "data", "attachment_count", "attachments")}


@given(_FRAMES)
def test_a_packet_made_by_incoming_is_the_packet_made_by_init(frame):
    """engineio_sockets makes every event frame's packet with SxPacket.incoming, skipping
    python-socketio's __init__: every attribute must be what __init__ would have made."""
    assert _every_attribute(SxPacket.incoming(frame)) == _every_attribute(SxPacket(encoded_packet=frame))


def test_incoming_refuses_an_empty_frame_as_init_does():
    assert _every_attribute(SxPacket.incoming("")) == _every_attribute(SxPacket(encoded_packet=""))
