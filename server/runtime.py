"""How a server process runs: its event loop and its garbage collector.

``python -m shotx.server`` and :func:`~shotx.server.run_workers` (each of
its processes) use both; an application that calls ``web.run_app`` itself
passes ``loop=event_loop()`` and calls :func:`tune_collector` once its
application is built. Neither changes what the server does, only what it
costs. Both are settings of the whole process, so only what runs the
process applies them (those two, ``run_workers`` with ``workers=1`` in the
caller's own process too); ``SxServer`` never does.

Why the collector: CPython collects its youngest generation after every
2,000 container objects allocated and not yet freed, and a connect makes
about 150 that live as long as the connection (sockets, tasks, queues,
dicts). A wave of 500 connects ran about 37 young collections, 3 or 4 of
the middle generation and, every third wave, a full one of 40 to 60 ms,
each walking the 57,000 objects that the imported modules and the built
application are made of and that are never garbage: together about a
seventh of the wave's CPU, and none of them found anything (cycles are
broken where connections end: ``engineio_sockets._drop_tracebacks``).
Measured with the collector's own callbacks (6 waves of 500 connects after
an ack and fan-out load, disconnects included): with the start-up objects
frozen and the young threshold at 50,000, one young collection ran per
wave, none during 90,000 acks, and a connect cost about 18 % less CPU
(513 → 423 µs). ``bench/run.py``'s connect figure, which counts only until
every client is connected, showed no difference beyond its noise. The price is
memory: up to 50,000 young objects (a few MB) wait longer for a
collection, and a reference cycle among the frozen start-up objects is
never freed (they live as long as the process anyway).
"""

from __future__ import annotations

import asyncio
import gc

# Youngest generation's threshold (CPython's default is 2,000); the older two keep theirs.
YOUNG_THRESHOLD = 50_000


def event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (``pip install shotx[fast]``), else asyncio's.

    Why: the server spends much of each message in the event loop itself
    (callbacks, socket reads and writes), which uvloop runs in C.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def tune_collector(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze what is alive now (call it once the application is built) and collect
    the youngest generation less often (see the module docstring)."""
    if young_threshold < 1:
        raise ValueError(f"young_threshold must be at least 1, not {young_threshold!r}")
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, oldest)
