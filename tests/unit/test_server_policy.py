"""Server policy with no sockets: join plans, refusals, once-only replies."""

import asyncio
import json

from shotx.server import MemoryStore, RoomBounds
from shotx.server.replies import ReplyMemory
from shotx.server.room_policy import is_refusal, plan_join, retention_cutoff


def test_join_without_since_takes_the_backlog_after_delivered():
    plan = plan_join("r", None, RoomBounds(head=5, floor=0, delivered=2))
    assert (plan.replay_after, plan.missed, plan.marks_backlog_delivered) == (2, 0, True)
    assert plan.answer(3, 5) == {"room": "r", "since": None, "head": 5, "replayed": 3, "missed": 0,
                                 "after": 2, "until": 5, "epoch": ""}
    assert not plan_join("r", None, RoomBounds(head=5, delivered=5)).marks_backlog_delivered


def test_join_with_since_resumes_and_counts_what_retention_dropped():
    assert plan_join("r", 7, RoomBounds(head=9, floor=0, delivered=9)).replay_after == 7
    plan = plan_join("r", 1, RoomBounds(head=9, floor=4, delivered=9))
    assert (plan.replay_after, plan.missed) == (4, 3)
    assert not plan.marks_backlog_delivered


def test_since_past_head_means_the_log_was_reset():
    plan = plan_join("r", 50, RoomBounds(head=3))
    assert (plan.replay_after, plan.head, plan.missed, plan.reset) == (3, 3, 0, "log_behind")
    assert plan.answer(0)["reset"] == "log_behind"


def test_an_offset_of_another_history_replays_the_new_one_from_its_start():
    """Defect: a member at offset 50 rejoining a server restarted on an empty file skipped 1-50."""
    plan = plan_join("r", 50, RoomBounds(head=60, delivered=60, epoch="new"), epoch="old")
    assert (plan.replay_after, plan.missed, plan.reset) == (0, 0, "new_history")
    assert plan.answer(60, 60)["epoch"] == "new" and not plan.marks_backlog_delivered
    behind = plan_join("r", 50, RoomBounds(head=20, floor=5, epoch="new"), epoch="old")
    assert (behind.replay_after, behind.missed) == (5, 5)  # retention of the new history counts as missed
    same = plan_join("r", 50, RoomBounds(head=60, epoch="same"), epoch="same")
    assert (same.replay_after, same.reset) == (50, None)
    unknown = plan_join("r", 50, RoomBounds(head=60, epoch="same"))  # a client that sends no epoch
    assert (unknown.replay_after, unknown.reset) == (50, None)


def test_refusal_follows_javascript_truthiness():
    assert [is_refusal(v) for v in (None, False, 0, 0.0, "")] == [True] * 5
    assert [is_refusal(v) for v in ({}, [], "user", 1, True, {"u": 1})] == [False] * 6


def test_retention_cutoff():
    assert retention_cutoff(100.0, 30.0) == 70.0 and retention_cutoff(100.0, None) is None


def test_reply_memory_runs_once_and_shares_a_running_copy():
    async def scenario():
        memory, runs = ReplyMemory(MemoryStore()), []

        async def handler():
            runs.append(1)
            await asyncio.sleep(0.01)
            return json.dumps({"meta": {"success": True}, "data": len(runs)})

        first, second = await asyncio.gather(memory.once("p", "id", handler), memory.once("p", "id", handler))
        third = await memory.once("p", "id", handler)
        other = await memory.once("q", "id", handler)
        return runs, first, second, third, other

    runs, first, second, third, other = asyncio.run(scenario())
    assert json.loads(first) == {"meta": {"success": True}, "data": 1}
    assert first == second == third
    assert json.loads(other)["data"] == 2 and len(runs) == 2


def test_reply_memory_forgets_a_run_that_raised():
    async def scenario():
        memory, calls = ReplyMemory(MemoryStore()), []

        async def flaky():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("crashed before replying")
            return '{"meta": {"success": true}, "data": "ok"}'

        try:
            await memory.once("p", "id", flaky)
        except RuntimeError:
            pass
        return await memory.once("p", "id", flaky), calls

    reply, calls = asyncio.run(scenario())
    assert json.loads(reply)["data"] == "ok" and len(calls) == 2


def test_room_locks_serialise_a_room_and_are_forgotten_after_use():
    import asyncio

    from shotx.server.room_locks import RoomLocks

    async def scenario():
        locks, order = RoomLocks(), []

        async def worker(room, n):
            async with locks.hold(room):
                order.append(("in", room, n))
                await asyncio.sleep(0.001)
                order.append(("out", room, n))

        await asyncio.gather(*(worker("a", n) for n in range(3)), worker("b", 0))
        in_a = [step for step in order if step[1] == "a"]
        assert in_a == [("in", "a", 0), ("out", "a", 0), ("in", "a", 1), ("out", "a", 1),
                        ("in", "a", 2), ("out", "a", 2)]
        assert locks.held == 0
        waiting = asyncio.ensure_future(worker("a", 9))
        async with locks.hold("a"):
            await asyncio.sleep(0.001)
            waiting.cancel()  # a waiter that gives up is forgotten too
        await asyncio.gather(waiting, return_exceptions=True)
        assert locks.held == 0

    asyncio.run(scenario())


def test_reply_memory_still_replies_when_the_store_cannot_remember(caplog):
    """The handler ran: withholding its ack would only make the client resend and run it again."""
    class UnreachableStore(MemoryStore):
        async def remember(self, principal, message_id, reply_json, ts):
            raise ConnectionError("the store went away")

    async def handler():
        return '{"meta": {"success": true}, "data": "ran"}'

    reply = asyncio.run(ReplyMemory(UnreachableStore()).once("p", "id-1", handler))
    assert json.loads(reply)["data"] == "ran"
    assert "id-1 could not be remembered" in caplog.text


def test_a_handler_error_whose_text_cannot_be_sent_still_gets_a_2004_reply():
    from shotx.server.replies import run_handler

    def raises():
        raise ValueError("bad \ud800 text")

    reply = json.loads(asyncio.run(run_handler(raises, (), None, "sid", "t")))
    assert reply == {"meta": {"success": False, "code": 2004, "error": "Error processing message"}, "data": None}


def test_the_reply_cache_is_bounded_by_bytes_as_well_as_entries():
    async def scenario():
        memory = ReplyMemory(MemoryStore(), cache_size=1000, cache_bytes=4000)
        for n in range(10):
            text = json.dumps({"meta": {"success": True}, "data": "x" * 900, "n": n})
            await memory.once("p", f"id{n}", lambda text=text: _value(text))
        big = json.dumps({"data": "y" * 2000})
        await memory.once("p", "big", lambda: _value(big))
        return memory

    async def _value(text):
        return text

    memory = asyncio.run(scenario())
    assert memory._recent_bytes <= 4000 and len(memory._recent) == 4  # the newest that fit
    assert ("p", "big") not in memory._recent  # over a quarter of the budget: left to the store
    assert ("p", "id9") in memory._recent and ("p", "id5") not in memory._recent
