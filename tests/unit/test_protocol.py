"""The wire protocol's pure parts. Plain functions and asserts only: the same
file also runs inside Pyodide (tests/browser/test_core_in_pyodide.py)."""

import uuid

from shotx.client import binary, protocol
from shotx.client.errors import AuthError, MessageError, PayloadTooLarge, SxError, SxTimeoutError


def test_uuid7_is_version_7_and_time_ordered():
    ids = [protocol.uuid7() for _ in range(200)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == 200
    stamps = [u.int >> 80 for u in parsed]
    assert stamps == sorted(stamps)


def test_codes_are_the_shotx_wire_values():
    assert (protocol.INVALID_FORMAT, protocol.INVALID_TYPE, protocol.UNKNOWN_TYPE, protocol.HANDLER_ERROR) == (
        2001, 2002, 2003, 2004)
    assert protocol.AUTH_CODES == {"AUTH_NULL", "AUTH_FAIL", "AUTH_ERROR"}
    assert protocol.DEFAULT_PATH == "/shotx/" and protocol.MAX_MESSAGE_SIZE == 2 * 1024 * 1024


def test_check_request_sorts_bad_input_into_codes():
    for bad in (None, "text", 42, [1, 2], True):
        assert protocol.check_request(bad) == {
            "meta": {"success": False, "code": 2001, "error": "Invalid message format"}, "data": None}
    for meta in (None, {}, {"type": 5}, {"type": None}, "meta"):
        assert protocol.check_request({"meta": meta, "data": 1})["meta"]["code"] == 2002
    assert protocol.check_request({"meta": {"type": "t", "id": "x"}, "data": [1]}) == (
        "t", [1], {"type": "t", "id": "x"})


def test_replies_have_the_shotx_shape():
    assert protocol.success({"a": 1}) == {"meta": {"success": True}, "data": {"a": 1}}
    assert protocol.unknown_type("zap") == {
        "meta": {"success": False, "code": 2003, "error": "Unknown message type: zap"}, "data": None}
    assert protocol.failure(2004)["meta"]["error"] == "Error processing message"


def test_request_and_room_message_envelopes():
    env = protocol.request("t", {"n": 1})
    assert env["meta"]["type"] == "t" and uuid.UUID(env["meta"]["id"]).version == 7
    assert protocol.room_message("n", 1, "id", "r", 7) == {
        "meta": {"type": "n", "id": "id", "room": "r", "offset": 7}, "data": 1}


def test_room_message_json_is_the_room_message_with_its_data_spliced_in():
    import json

    for data in ({"text": "é\"}", "n": [1, None]}, 0, "x", None, [], 2.5):
        text = protocol.room_message_json("n", protocol.encode_json(data), "id-1", "r é", 9)
        assert json.loads(text) == protocol.room_message("n", data, "id-1", "r é", 9)


def test_encode_json_refuses_what_javascript_cannot_parse():
    for bad in (float("nan"), float("inf"), {"x": [float("-inf")]}):
        try:
            protocol.encode_json(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"encoded {bad!r}")


def test_room_and_offset_validation():
    assert protocol.check_room("a") == "a"
    for bad in ("", None, 3, ["r"]):
        try:
            protocol.check_room(bad)
        except ValueError as error:
            assert "room" in str(error)
        else:
            raise AssertionError(f"accepted room {bad!r}")
    assert protocol.check_offset(None) is None and protocol.check_offset(0) == 0
    for bad in (-1, 1.5, "3", True):
        try:
            protocol.check_offset(bad)
        except ValueError as error:
            assert "since" in str(error)
        else:
            raise AssertionError(f"accepted offset {bad!r}")


def test_encoded_size_counts_utf8_bytes_and_attachments_and_refuses_non_json():
    assert binary.encoded_size({"a": "é"}) == len('{"a":"é"}'.encode())
    assert binary.encoded_size({"f": b"abc"}) == len('{"f":{"_placeholder":true,"num":0}}') + 3
    try:
        binary.encoded_size({"a": object()})
    except TypeError:
        pass
    else:
        raise AssertionError("encoded an object JSON cannot carry")


def test_error_tree_and_texts():
    timeout = SxTimeoutError("test_route", 0.2)
    assert isinstance(timeout, TimeoutError) and isinstance(timeout, SxError)
    assert str(timeout) == "TIMEOUT: test_route (200ms)" and timeout.code == "TIMEOUT"
    assert str(AuthError("AUTH_FAIL")) == "AUTH_FAIL" and AuthError("AUTH_FAIL").code == "AUTH_FAIL"
    assert MessageError(2004, "boom").code == 2004 and str(MessageError(2004, "boom")) == "boom"
    assert PayloadTooLarge(10, 5).code == "PAYLOAD_TOO_LARGE"


def test_handler_arity_counts_what_a_handler_takes():
    def data_only(data):
        return data

    def everything(*args):
        return args

    async def with_meta(data, meta, extra=None):
        return meta

    assert protocol.handler_arity(data_only, 2) == 1
    assert protocol.handler_arity(everything, 3) == 3
    assert protocol.handler_arity(with_meta, 2) == 2  # capped at what is passed
    assert protocol.handler_arity(lambda: None, 2) == 0
    assert protocol.handler_arity(print, 3) == 3  # a builtin without a readable signature


def test_text_a_store_cannot_keep_is_refused_clearly():
    """A lone UTF-16 surrogate is no Unicode text: refused at the edge, with an ASCII error
    text that can itself go into an ack (a store would fail on it at commit)."""
    for bad in ("\ud800", "a\udfffb", "é\udc00"):
        for refuse in (protocol.encode_json, lambda text: protocol.encode_json({"data": [text]}),
                       protocol.check_room, protocol.check_storable):
            try:
                refuse(bad)
            except ValueError as error:
                assert "surrogate" in str(error) and str(error).isascii(), error
            else:
                raise AssertionError(f"{refuse} took {bad!r}")
        id_reply = protocol.check_request({"meta": {"type": "t", "id": bad}, "data": 1})
        type_reply = protocol.check_request({"meta": {"type": bad, "id": "x"}, "data": 1})
        assert (id_reply["meta"]["code"], type_reply["meta"]["code"]) == (2001, 2002)
        assert "surrogate" in id_reply["meta"]["error"] and "surrogate" in type_reply["meta"]["error"]
        assert protocol.encode_json(id_reply).isascii()
    for good in ("", "ascii", "é ü 中 😀", "\U0010ffff"):  # any real character, a pair too
        assert protocol.encode_json(good) == f'"{good}"' and protocol.check_storable(good) == good
    assert protocol.check_room("é😀") == "é😀"
    import json

    assert protocol.encode_json(json.loads('"\\ud83d\\ude00"')) == '"😀"'  # an escaped pair is one character
    for code in range(0xD800, 0xE000):  # every surrogate, alone in an escaped JSON string as a client sends it
        try:
            protocol.encode_json(json.loads(f'["\\u{code:04x}"]'))
        except ValueError:
            continue
        raise AssertionError(f"encoded a lone \\u{code:04x}")
    assert protocol.check_request({"meta": {"type": "t", "id": "é"}, "data": "\ud800"})[0] == "t"  # data: later


def test_a_message_type_no_store_can_keep_is_refused_in_the_callers_hands():
    import pytest
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        protocol.check_type("t\ud800")

