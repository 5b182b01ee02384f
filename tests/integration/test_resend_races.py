"""Copies of one message that race each other run its handler once (issue 8, defect 4).

Two tabs flushing one outbox, or a resend crossing a slow first copy, put
several copies of one id in flight at once. Every copy must get the same
ack and the handler must run once, on a store that really awaits: the real
Redis, and real SQLite and memory stores behind :class:`YieldingStore`.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from shotx.client import protocol
from shotx.server import MemoryStore, RedisStore, SqliteStore
from shotx.server.replies import ReplyMemory

from yielding_store import YieldingStore  # tests/integration is on sys.path (pytest rootdir-less import)

COPIES = 8
IDS = 4


def copies_of(message_id: str, data: object) -> list[dict[str, object]]:
    """``COPIES`` envelopes of one message: resends, and one first send among them."""
    envelopes = [protocol.request("count", data, message_id, resend=True) for _ in range(COPIES)]
    envelopes[COPIES // 2]["meta"].pop("resend")
    return envelopes


async def test_reply_memory_runs_once_for_concurrent_copies_on_a_yielding_store():
    """No server: copies started in one loop turn, each reaching the store before the first ran."""
    memory, runs = ReplyMemory(YieldingStore(MemoryStore())), []

    async def run() -> str:
        runs.append(1)
        await asyncio.sleep(0)
        return protocol.encode_json(protocol.success(len(runs)))

    flags = [True, True, False, True, True]
    texts = await asyncio.gather(*(memory.once("p", "m1", run, resent=flag) for flag in flags))
    assert runs == [1]
    assert texts == [protocol.encode_json(protocol.success(1))] * len(flags)
    assert not memory._running  # nothing left registered


async def test_a_copy_arriving_during_the_first_ones_lookup_waits_for_its_outcome():
    """Arrival order: the copy that came first decides; a later one does not overtake it."""
    memory, order = ReplyMemory(YieldingStore(MemoryStore(), turns=5)), []

    def run_as(name: str):
        async def run() -> str:
            order.append(name)
            return protocol.encode_json(protocol.success(name))
        return run

    first = asyncio.ensure_future(memory.once("p", "m2", run_as("first"), resent=True))
    await asyncio.sleep(0)  # the first copy is now inside its store lookup
    second = await memory.once("p", "m2", run_as("second"), resent=False)
    assert order == ["first"]
    assert json.loads(second)["data"] == "first" and await first == second


def counting_route(counts: dict[str, int]):
    def setup(sx) -> None:
        async def count(data, socket, meta):
            counts[meta["id"]] = counts.get(meta["id"], 0) + 1
            await asyncio.sleep(0)
            return {"data": data, "runs": counts[meta["id"]]}
        sx.on_message("count", count)
    return setup


async def send_copies_concurrently(server_url: str, raw_client, tag: str) -> tuple[list[str], list[object]]:
    """``COPIES`` copies of each of ``IDS`` messages over two sockets (two tabs), all at once."""
    tabs = [await raw_client(server_url), await raw_client(server_url)]
    ids = [f"{tag}-{n}" for n in range(IDS)]
    calls = [tabs[i % 2].call("message", envelope, timeout=5)
             for message_id in ids for i, envelope in enumerate(copies_of(message_id, {"id": message_id}))]
    return ids, await asyncio.gather(*calls, return_exceptions=True)  # counts are checked first


def assert_ran_once_with_one_ack(ids: list[str], replies: list[object], counts: dict[str, int]) -> None:
    assert counts == {message_id: 1 for message_id in ids}
    for n, message_id in enumerate(ids):
        expected = {"meta": {"success": True}, "data": {"data": {"id": message_id}, "runs": 1}}
        assert replies[n * COPIES:(n + 1) * COPIES] == [expected] * COPIES


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_concurrent_copies_run_once_on_a_yielding_store(backend, start_server, raw_client, tmp_path):
    inner = SqliteStore(tmp_path / "races.sqlite3") if backend == "sqlite" else MemoryStore()
    counts: dict[str, int] = {}
    server = await start_server(counting_route(counts), store=YieldingStore(inner))
    ids, replies = await send_copies_concurrently(server.url, raw_client, backend)
    assert_ran_once_with_one_ack(ids, replies, counts)


async def test_concurrent_copies_run_once_on_redis(redis_prefix, redis_url, start_server, raw_client):
    counts: dict[str, int] = {}
    server = await start_server(counting_route(counts), store=RedisStore(redis_url, prefix=redis_prefix))
    ids, replies = await send_copies_concurrently(server.url, raw_client, "redis")
    assert_ran_once_with_one_ack(ids, replies, counts)
