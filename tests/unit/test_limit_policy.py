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
