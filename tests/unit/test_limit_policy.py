"""Per-connection limits, decided with no loop and no clock."""

from shotx.server.limits import ConnectionUse, Limits, TokenBucket


def test_a_bucket_refills_at_its_rate_and_never_past_its_burst():
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(10.4) is False and bucket.take(10.5) is True  # 0.5 s at 2/s: one token
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # saved up to 3 only


def test_messages_in_progress_are_counted_and_released():
    use = ConnectionUse(Limits(messages_per_second=None, handlers_at_once=2))
    assert use.admit(0.0) is None and use.admit(0.0) is None
    assert use.admit(0.0) == "Limit exceeded: more than 2 messages in progress"
    use.finished()
    assert use.admit(0.0) is None


def test_the_rate_says_which_limit_and_rooms_are_capped():
    use = ConnectionUse(Limits(messages_per_second=1, message_burst=1, rooms=2))
    assert use.admit(0.0) is None
    assert use.admit(0.0) == "Limit exceeded: more than 1 messages a second (burst 1)"
    assert use.may_join(1) is None and use.may_join(2) == "Limit exceeded: at most 2 rooms per connection"
    assert ConnectionUse(Limits(None, 1, None, None)).may_join(10**6) is None


def test_an_ordered_connection_holds_every_later_message_until_the_refused_one_comes_again():
    use = ConnectionUse(Limits(messages_per_second=10, message_burst=1), ordered=True)
    assert use.admit(0.0, "a") is None
    refused = use.admit(0.0, "b")
    assert refused == "Limit exceeded: more than 10 messages a second (burst 1)" and use.held == "b"
    # a token is back (0.1 s at 10/s), but "c" came after "b": held, and it takes no token
    held = "Limit exceeded: an earlier message of this connection was refused; send it again first"
    assert use.admit(0.2, "c") == held and use.admit(0.2, "d") == held
    assert use.admit(0.2, None) is None  # a built-in (join, leave) is not part of the stream
    assert use.admit(0.5, "b") is None and use.held is None  # "b" again: the stream goes on
    assert use.admit(1.0, "c") is None


def test_a_refused_message_refused_again_keeps_holding_and_unordered_connections_never_hold():
    use = ConnectionUse(Limits(messages_per_second=1, message_burst=1), ordered=True)
    assert use.admit(0.0, "a") is None and use.admit(0.0, "b") is not None
    assert use.admit(0.1, "b") is not None and use.held == "b"  # no token yet: still b's turn
    assert use.admit(1.2, "b") is None and use.held is None
    shotx_js = ConnectionUse(Limits(messages_per_second=1, message_burst=1))  # no auth.ordered (a Shotx JS client): no order promised
    assert shotx_js.admit(0.0, "a") is None and shotx_js.admit(0.0, "b") is not None
    assert shotx_js.held is None and shotx_js.admit(1.0, "c") is None
