"""A connection lost while the client sets it up (auth, rejoin) must not stall the client.

Found by the room fault runs: a member whose connection dropped between
its rejoin request and the answer stayed silent for 30 s (the rejoin's
request timeout), sends included, because nothing ends a request when its
connection goes; the same for the wait for ``auth_success`` (10 s). Here
the proxy drops exactly that answer with its connection, and the member
must handle the next room message within a few reconnection delays.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from shotx.client import SxClient

from proxy import FaultProxy

ROOM = "setup-cut"
RECOVERY = 5.0  # seconds: reconnection waits at most 0.3 s here; the stall was 10-30 s


async def publish(session: aiohttp.ClientSession, url: str, n: int) -> int:
    async with session.post(f"{url}/demo/publish", params={"room": ROOM}, json={"n": n}) as reply:
        assert reply.status == 200, await reply.text()
        return int((await reply.json())["offset"])


@pytest.mark.parametrize("lost_answer", [b'"replayed"', b"auth_success"], ids=["rejoin-answer", "auth-success"])
async def test_a_connection_lost_during_setup_does_not_stall_the_client(tmp_path, servers, figures, lost_answer):
    server = servers(str(tmp_path / "server.sqlite3"))
    await server.start()
    proxy = await FaultProxy.start([("127.0.0.1", server.port)], seed=0, max_delay=0)
    member = SxClient(proxy.url, store=tmp_path / "member.sqlite3", reconnection_delay=0.05,
                      reconnection_delay_max=0.3)
    handled: dict[int, asyncio.Event] = {1: asyncio.Event(), 2: asyncio.Event()}
    member.on_message("notification", lambda data, meta: handled[meta["offset"]].set())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await member.connect("valid", timeout=10)
            await member.join(ROOM, timeout=10)
            await publish(session, server.url, 1)
            await asyncio.wait_for(handled[1].wait(), 5)  # the member has an offset: it rejoins with since
            dropped = proxy.cut_on_server_bytes(lost_answer)
            proxy.cut()
            await asyncio.wait_for(dropped.wait(), 5)
            cut_at = time.monotonic()
            assert await publish(session, server.url, 2) == 2
            try:
                await asyncio.wait_for(handled[2].wait(), RECOVERY)
            except asyncio.TimeoutError:
                pass
            recovered = time.monotonic() - cut_at if handled[2].is_set() else None
    finally:
        await member.close()
        await proxy.close()
        await server.stop()
    figures(f"faults: setup_cut={lost_answer.decode()} recovered_in="
            f"{'%.2fs' % recovered if recovered is not None else f'>{RECOVERY}s'} cuts={proxy.counts.cuts}")
    assert recovered is not None, (
        f"the member handled nothing for {RECOVERY}s after its connection was lost while waiting for "
        f"{lost_answer.decode()}: the client waits out its request timeout on a dead connection")
