"""Bytes in Chromium's Pyodide: a 1 MiB file each way as Socket.IO binary (a send,
its reply, a room message), and a file queued offline across a reload, which
IndexedDB holds as a Uint8Array (binary), not as text.

The client runs in the bundle's bare Pyodide page (``pyodide-tests.html``) on a
real demo server; the WebSocket frames are watched from Playwright, so "binary
on the wire" is what Chromium sent and received, not what our code says.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from demo_page import LOAD, handled
from playwright.sync_api import Page

MIB = 1024 * 1024

RUN = """
async ({ code, db, room }) => {
  const pyodide = await window.pyodideReady;
  await pyodide.loadPackage(["shotx"]);
  const namespace = pyodide.globals.get("dict")();
  namespace.set("DB", db);
  namespace.set("ROOM", room);
  try {
    return await pyodide.runPythonAsync(code, { globals: namespace });
  } finally {
    namespace.destroy();
  }
}
"""

ONLINE = """
import asyncio, hashlib, json, os
import js
from shotx.client import SxClient
from shotx.client.indexeddb_store import IndexedDBStore
from shotx.client.js_transport import to_js_bytes

client = SxClient(js.location.origin, store=IndexedDBStore(DB), timeout=30)
files = []
client.on_message("file", lambda data, meta: files.append(data))
await client.connect("valid")
await client.join(ROOM)
blob = os.urandom(1024 * 1024)
reply = await client.send("test_route", {"name": "up.bin", "file": blob})
back = reply["data"]["file"]
await js.fetch(f"/demo/publish_file?room={ROOM}&name=down.bin", method="POST", body=to_js_bytes([blob[::-1]])[0])
while not files:
    await asyncio.sleep(0.01)
await client.close()
json.dumps({"sent": hashlib.sha256(blob).hexdigest(), "reply_type": type(back).__name__,
            "reply": hashlib.sha256(back).hexdigest(), "room_type": type(files[0]["file"]).__name__,
            "room": hashlib.sha256(files[0]["file"][::-1]).hexdigest(), "room_name": files[0]["name"]})
"""

QUEUE_OFFLINE = """
import hashlib, json, os
import js
from shotx.client import SxClient
from shotx.client.indexeddb_store import IndexedDBStore

client = SxClient(js.location.origin, store=IndexedDBStore(DB))  # never connected: the send is queued
blob = os.urandom(1024 * 1024)
await client.queue("test_route", {"name": "offline.bin", "file": blob})
await client.close()
hashlib.sha256(blob).hexdigest()
"""

FLUSH_AFTER_RELOAD = """
import asyncio, hashlib, json
import js
from shotx.client import SxClient
from shotx.client.indexeddb_store import IndexedDBStore

client = SxClient(js.location.origin, store=IndexedDBStore(DB))
replies = []
client.on_reply("test_route", replies.append)
await client.connect("valid")
while not replies or client.queued:
    await asyncio.sleep(0.01)
await client.close()
file = replies[0].result["data"]["file"]
json.dumps({"type": type(file).__name__, "sha": hashlib.sha256(file).hexdigest(), "error": str(replies[0].error),
            "sent_type": type(replies[0].sent["file"]).__name__})
"""

# What IndexedDB holds, read by JavaScript itself: the record's JSON text and its attachments' types.
STORED = """(db) => new Promise((resolve, reject) => {
    const open = indexedDB.open(db);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const all = open.result.transaction("outbox", "readonly").objectStore("outbox").getAll();
      all.onsuccess = () => {
        open.result.close();
        resolve(all.result.map((row) => ({ jsonLength: row.json.length, placeholder: row.json.includes('"_placeholder":true'),
          attachments: (row.attachments || []).map((a) => ({ type: Object.prototype.toString.call(a), bytes: a.byteLength })) })));
      };
    };
  })"""


def binary_frames(page: Page) -> dict[str, list[int]]:
    """Sizes of the binary WebSocket frames the page sends and receives, from now on."""
    seen: dict[str, list[int]] = {"sent": [], "received": []}

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: isinstance(payload, bytes) and seen["sent"].append(len(payload)))
        ws.on("framereceived", lambda payload: isinstance(payload, bytes) and seen["received"].append(len(payload)))
    page.on("websocket", watch)
    return seen


def run(page: Page, code: str, db: str, room: str = "files") -> Any:
    return page.evaluate(RUN, {"code": code, "db": db, "room": room})


def test_a_mib_each_way_online_travels_as_binary(page: Page, demo_server, net_log, console_log):
    page.set_default_timeout(LOAD)
    frames = binary_frames(page)
    page.goto(f"{demo_server}/pyodide-tests.html")
    seen = json.loads(run(page, ONLINE, f"bin-{uuid.uuid4().hex[:8]}", f"files-{uuid.uuid4().hex[:8]}"))
    assert seen["reply_type"] == seen["room_type"] == "bytes"  # Uint8Array -> bytes at the FFI, not text
    assert seen["sent"] == seen["reply"] == seen["room"] and seen["room_name"] == "down.bin"
    assert {"bytes": MIB, "sha256": seen["sent"]} in [d.get("file") for d in handled(demo_server) if isinstance(d, dict)]
    assert frames["sent"].count(MIB) == 1  # the upload: one binary attachment of 1 MiB
    assert frames["received"].count(MIB) == 2  # the reply and the room message


def test_a_mib_queued_offline_is_kept_as_binary_and_flushed_after_a_reload(
        page: Page, demo_server, net_log, console_log):
    page.set_default_timeout(LOAD)
    db = f"bin-offline-{uuid.uuid4().hex[:8]}"
    page.goto(f"{demo_server}/pyodide-tests.html")
    sha = run(page, QUEUE_OFFLINE, db)
    stored = page.evaluate(STORED, db)
    assert len(stored) == 1 and stored[0]["placeholder"] and stored[0]["jsonLength"] < 1000  # no base64 in the text
    assert stored[0]["attachments"] == [{"type": "[object Uint8Array]", "bytes": MIB}]
    frames = binary_frames(page)
    page.reload()
    seen = json.loads(run(page, FLUSH_AFTER_RELOAD, db))
    assert seen == {"type": "bytes", "sha": sha, "error": "None", "sent_type": "bytes"}  # test_route echoes it
    assert page.evaluate(STORED, db) == []
    assert {"bytes": MIB, "sha256": sha} in [d.get("file") for d in handled(demo_server) if isinstance(d, dict)]
    assert frames["sent"].count(MIB) == 1 and frames["received"].count(MIB) == 1
