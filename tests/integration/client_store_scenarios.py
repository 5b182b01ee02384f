"""The client store contract: what every ClientStore keeps, as plain async scenarios.

One source for every implementation: ``test_client_store_contract.py`` runs
each scenario against the memory and SQLite stores in CPython, and
``tests/browser/test_indexeddb_store_contract.py`` runs this same file inside
Chromium's Pyodide against IndexedDB. Each scenario gets a fresh store and
``reopen``: a function giving a new store on the same storage (None for a
store that keeps nothing beyond itself), to check what survives a restart.
Standard library and shotx only, so that it runs unchanged in both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from shotx.client.core import Outbox

Reopen = Callable[[], Any] | None


async def outbox_records_round_trip_in_send_order(store: Any, reopen: Reopen) -> None:
    box = Outbox()
    records = [box.add("message", {"type": "t"}, {"n": n, "text": "é"}) for n in range(4)]
    for record in reversed(records):
        await store.add_outbox(record)
    await store.remove_outbox([records[1].id])
    await store.remove_outbox([])
    loaded = (await store.load()).outbox
    assert [r.data["n"] for r in loaded] == [0, 2, 3], loaded
    assert loaded[0].to_dict() == records[0].to_dict()
    if reopen is not None:
        again = reopen()
        assert [r.to_dict() for r in (await again.load()).outbox] == [r.to_dict() for r in loaded]
        await again.close()


async def rooms_offsets_and_seen_ids(store: Any, reopen: Reopen) -> None:
    await store.save_room("a", None)
    await store.save_room("b", 4)
    await store.mark_handled("a", 7, "m7")
    await store.mark_handled("gone", 1, "m1")  # not joined: only the id counts
    await store.remove_room("b")
    state = await store.load()
    assert state.rooms == {"a": 7} and state.seen == ["m7", "m1"], state


async def seen_ids_stay_bounded(store: Any, reopen: Reopen) -> None:
    store.seen_limit = 5
    await store.save_room("r", None)
    for n in range(12):
        await store.mark_handled("r", n, f"id{n}")
    state = await store.load()
    assert state.seen == [f"id{n}" for n in range(7, 12)] and state.rooms == {"r": 11}, state


async def epochs_and_the_client_id_are_kept(store: Any, reopen: Reopen) -> None:
    assert (await store.load()).client_id is None
    await store.save_client_id("c1")
    await store.save_room("r", 3, "epoch-a")
    await store.save_room("fresh", None)
    await store.mark_handled("r", 4, "m4")  # a moved offset keeps its epoch
    state = await store.load()
    assert state.client_id == "c1" and state.rooms == {"r": 4, "fresh": None}, state
    assert state.epochs == {"r": "epoch-a"}, state
    if reopen is not None:
        again = reopen()
        kept = await again.load()
        assert (kept.client_id, kept.rooms, kept.epochs) == ("c1", state.rooms, state.epochs), kept
        await again.close()
    await store.save_room("r", 0, "epoch-b")  # a new history
    await store.remove_room("fresh")
    state = await store.load()
    assert state.rooms == {"r": 0} and state.epochs == {"r": "epoch-b"}, state
    await store.remove_room("r")
    assert (await store.load()).epochs == {}


SCENARIOS: dict[str, Callable[[Any, Reopen], Awaitable[None]]] = {
    fn.__name__: fn for fn in (outbox_records_round_trip_in_send_order, rooms_offsets_and_seen_ids,
                               seen_ids_stay_bounded, epochs_and_the_client_id_are_kept)
}
