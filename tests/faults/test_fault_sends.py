"""Sends through a cutting proxy while the SQLite server is SIGKILLed and restarted.

Promise under test (README, "Delivery guarantees", and issue 8): every
acknowledged send ran its handler exactly once; every send the application
was told failed did not run; a send runs twice only inside the documented
crash window (its first run's process was killed before the reply was
stored, and the client never saw that run's ack); per client, handlers start
in send order.
"""

from __future__ import annotations

import time

from fault_ledger import digest, tally_sends
from fault_processes import read_runs
from fault_sends import SendRun, send_schedule
from proxy import FaultProxy

CLIENTS = 8
WINDOW = 0.25  # seconds between a first run and the SIGKILL that may make it run again


def figures_line(tally, run, proxy, seed, schedule, seconds, **extra):
    parts = dict(sends=run.total, room_messages=0, cuts=proxy.counts.cuts, kills=run.kills,
                 lost=len(tally.lost), twice=len(tally.twice), twice_in_window=len(tally.twice_in_window),
                 out_of_order=tally.out_of_order, out_of_order_resends=tally.out_of_order_resends,
                 failed_but_ran=len(tally.failed_but_ran), connections_cut=proxy.counts.connections_cut,
                 stalls=proxy.counts.stalls, recreated=run.recreated, window_max_ms=round(tally.window_max_ms, 1),
                 **extra, seconds=round(seconds, 1), seed=seed, schedule=digest(schedule))
    return "faults: " + " ".join(f"{name}={value}" for name, value in parts.items())


def assert_promise(tally, run, finished):
    details = {"lost": tally.lost[:10], "twice": tally.twice[:10], "failed_but_ran": tally.failed_but_ran[:10],
               "still_queued": run.still_queued(), "failed_texts": sorted(set(
                   text for key, text in run.ledger.failed.items() if run.ledger.sent[key] == "fault_send"))[:5]}
    assert finished, f"not every send was answered in time: {details}"
    assert not tally.lost, f"sends lost (no run, or no answer): {details}"
    assert not tally.twice, f"sends run twice outside the crash window: {details}"
    assert not tally.failed_but_ran, f"the app was told these failed, yet they ran: {details}"
    assert tally.out_of_order == 0, f"handlers started out of send order {tally.out_of_order} times"
    refused = [key for key, type_ in run.ledger.sent.items() if type_ == "fault_refuse"]
    assert all(key in run.ledger.failed or key in run.ledger.orphaned for key in refused), "a refusal was acked"


async def test_sends_through_cuts_and_kills_run_once(tmp_path, servers, rng, seed, soak, figures, client_log):
    total, cuts, kills = (10_000, 50, 3) if soak else (2_000, 20, 2)
    schedule = send_schedule(rng, total, cuts, kills, recreations=3, clients=CLIENTS)
    server = servers(str(tmp_path / "server.sqlite3"))
    await server.start()
    proxy = await FaultProxy.start([("127.0.0.1", server.port)], rng.randrange(2**31))
    run = SendRun(tmp_path, proxy, [server], CLIENTS, total)
    started = time.monotonic()
    try:
        await run.connect_all()
        finished = await run.run(schedule, budget=240 if soak else 60)
    finally:
        await run.close()
        await proxy.close()
        await server.stop()
    tally = tally_sends(run.ledger, read_runs(server.runs), server.kills, WINDOW)
    figures(figures_line(tally, run, proxy, seed, schedule, time.monotonic() - started, **client_log()))
    assert proxy.counts.connections_cut > 0 and run.kills == kills, "the faults did not happen"
    assert_promise(tally, run, finished)
