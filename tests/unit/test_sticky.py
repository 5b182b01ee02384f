"""server/sticky.py: which worker a connection goes to, without a loop or a socket."""

import pytest

from shotx.server.sticky import RequestLineError, RoundRobin, request_line, tagged_sid, worker_of_request


def test_the_request_line_is_read_only_once_it_has_ended():
    assert request_line(b"GET /shotx/?EIO=4 HTTP/1.1") is None
    assert request_line(b"GET /shotx/?EIO=4 HTTP/1.1\r") is None
    assert request_line(b"GET /shotx/?EIO=4 HTTP/1.1\r\nHost: x\r\n\r\n") == b"GET /shotx/?EIO=4 HTTP/1.1"
    assert request_line(b"GET / HTTP/1.0\n") == b"GET / HTTP/1.0"


def test_a_request_line_past_aiohttps_limit_is_refused():
    with pytest.raises(RequestLineError):
        request_line(b"G" * 9000)


def test_a_sid_names_its_worker():
    sid = tagged_sid(3, "Xhxkzrj47FGoa-M0AAAA")
    assert sid == "3.Xhxkzrj47FGoa-M0AAAA"
    line = f"POST /shotx/?EIO=4&transport=polling&t=abc&sid={sid} HTTP/1.1".encode()
    assert worker_of_request(line) == 3
    assert worker_of_request(f"GET /shotx/?sid={tagged_sid(12, 'a_b-c')}&EIO=4 HTTP/1.1".encode()) == 12


@pytest.mark.parametrize("line", [
    b"GET /shotx/?EIO=4&transport=polling HTTP/1.1",  # a handshake
    b"GET /shotx/?EIO=4&transport=websocket HTTP/1.1",  # a WebSocket-only client
    b"GET /index.html HTTP/1.1",
    b"GET /shotx/?EIO=4&sid=Xhxkzrj47FGoa-M0AAAA HTTP/1.1",  # a sid that is not one of ours
    b"GET /shotx/?EIO=4&sid=x.abc HTTP/1.1",
    b"GET /shotx/?EIO=4&sid= HTTP/1.1",
    b"GET /shotx/?sid=1.abc",  # no version: not HTTP
    b"\x16\x03\x01 sid=1.a \xff",  # a TLS hello, or noise
])
def test_anything_else_names_no_worker(line):
    assert worker_of_request(line) is None


def test_round_robin_goes_over_running_workers_and_keeps_a_running_sids_worker():
    pick = RoundRobin(3)
    assert pick.choose(None) is None and pick.choose(1) is None  # nothing runs yet
    for index in range(3):
        pick.mark_running(index)
    assert [pick.choose(None) for _ in range(4)] == [0, 1, 2, 0]
    assert [pick.choose(2) for _ in range(3)] == [2, 2, 2]  # a session's worker, without taking a turn
    pick.mark_stopped(2)
    assert [pick.choose(2), pick.choose(None), pick.choose(None)] == [1, 0, 1]  # a dead worker's sid: anyone
    with pytest.raises(ValueError):
        RoundRobin(0)
