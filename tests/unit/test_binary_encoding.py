"""Bytes in data as Socket.IO carries them (shotx.client.binary), and the server's
binary packets and frames, compared with what python-socketio itself makes."""

from __future__ import annotations

import json

import pytest
import socketio

from shotx.client import binary, protocol
from shotx.server.packets import BinaryJsonText, SxPacket, message_frames

DATA = {"name": "f", "file": b"\x00\xff", "parts": [b"", bytearray(b"ab"), {"deep": b"\n"}], "n": 1}


def test_split_and_join_round_trip_every_place_bytes_may_sit():
    placed, attachments = binary.split(DATA)
    assert attachments == [b"\x00\xff", b"", b"ab", b"\n"]
    assert placed["file"] == {"_placeholder": True, "num": 0} and placed["parts"][2]["deep"]["num"] == 3
    assert binary.join(placed, attachments) == {**DATA, "parts": [b"", b"ab", {"deep": b"\n"}]}


def test_encode_gives_plain_text_for_data_without_bytes_and_placeholders_with_them():
    assert binary.encode({"a": [1, "é"]}) == ('{"a":[1,"é"]}', ())
    text, attachments = binary.encode(DATA)
    assert '"_placeholder":true' in text and len(attachments) == 4
    assert binary.decode(text, attachments)["parts"][1] == b"ab"
    assert binary.size(text, attachments) == len(text.encode()) + 5


def test_what_json_cannot_carry_is_still_refused_with_or_without_bytes():
    with pytest.raises(TypeError):
        binary.encode({"bad": object()})
    with pytest.raises(TypeError):
        binary.encode({"file": b"x", "bad": object()})
    with pytest.raises(ValueError):
        binary.encode({"file": b"x", "nan": float("nan")})


def test_without_attachments_nothing_is_replaced_and_a_bad_placeholder_is_refused():
    lookalike = {"_placeholder": True, "num": 0}
    assert binary.decode(json.dumps(lookalike)) == lookalike
    for num in (1, -1, "0", True):
        with pytest.raises(ValueError, match="names no attachment"):
            binary.join({"_placeholder": True, "num": num}, [b"x"])


def test_pack_and_unpack_keep_every_byte_and_refuse_a_cut_value():
    items = (b"", bytes(range(256)), b"\x00" * 1000)
    assert binary.unpack(binary.pack(items)) == items
    assert binary.unpack(None) == binary.unpack(b"") == ()
    with pytest.raises(ValueError, match="cut short"):
        binary.unpack(binary.pack(items)[:-1])


def test_a_binary_ack_encodes_as_python_socketio_encodes_the_same_value():
    reply = {"meta": {"success": True}, "data": {"file": b"\x01\x02", "more": [b"\x03"]}}
    stock = socketio.packet.Packet(socketio.packet.ACK, data=[reply], id=7).encode()
    text, attachments = binary.encode(reply)
    ours = SxPacket(socketio.packet.ACK, data=[BinaryJsonText(text, attachments)], id=7).encode()
    assert ours[0].partition("[")[0] == stock[0].partition("[")[0] == "62-7"
    assert json.loads(ours[0][4:]) == json.loads(stock[0][4:]) and ours[1:] == stock[1:]


def test_a_room_message_with_bytes_is_a_binary_event_then_its_attachments():
    text, attachments = binary.encode({"file": b"\xff"})
    frames = message_frames(protocol.room_message_json("t", text, "id", "r", 3), attachments)
    stock = socketio.packet.Packet(socketio.packet.EVENT,
                                   data=["message", protocol.room_message("t", {"file": b"\xff"}, "id", "r", 3)])
    encoded = stock.encode()
    assert frames[0].data.partition("[")[0] == encoded[0].partition("[")[0] == "51-"
    assert json.loads(frames[0].data[3:]) == json.loads(encoded[0][3:])
    assert [frame.data for frame in frames[1:]] == encoded[1:] == [b"\xff"]
    assert len(message_frames('{"a":1}')) == 1


def test_an_incoming_packet_past_the_attachment_limit_is_refused_unanswerable():
    limited = SxPacket.limited(10)
    packet = limited(encoded_packet='52-1["message",{"data":[{"_placeholder":true,"num":0},'
                                    '{"_placeholder":true,"num":1}]}]')
    assert packet.add_attachment(b"x" * 6) is False
    assert packet.add_attachment(b"x" * 6) is True  # complete: as a malformed frame nobody is answered for
    assert packet.id is None and type(packet.data[1]).__name__ == "MalformedFrame"
    assert "max_message_size" in packet.data[1].reason and not packet.data[1].answerable
    within = limited(encoded_packet='51-1["message",{"_placeholder":true,"num":0}]')
    assert within.add_attachment(b"x" * 10) is True and within.data == ["message", b"x" * 10]
