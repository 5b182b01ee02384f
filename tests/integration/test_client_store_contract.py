"""Every client store keeps the same promises: client_store_scenarios.py, run here
against the CPython stores (and in Chromium against IndexedDB)."""

import pytest
from client_store_scenarios import SCENARIOS

from shotx.client import MemoryStore
from shotx.client.sqlite_store import SqliteStore


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_client_store_contract(kind, scenario, tmp_path):
    path = tmp_path / "c.sqlite3"
    store = MemoryStore() if kind == "memory" else SqliteStore(path)
    reopen = None if kind == "memory" else (lambda: SqliteStore(path))
    try:
        await SCENARIOS[scenario](store, reopen)
    finally:
        await store.close()
