"""The demo server's HTTP helpers (used by the browser tests and by hand)."""

import aiohttp
import pytest
from aiohttp import web

from shotx.server.__main__ import SX, build_app


async def test_http_publish_stores_and_refuses_bad_input_clearly(tmp_path):
    app = build_app("memory", None, 0)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/demo/publish?room=r", json={"n": 1}) as response:
                assert response.status == 200 and (await response.json())["offset"] == 1
            for query, body in (("room=r", b""), ("room=r", b"{not json"), ("room=", b'{"n": 2}'),
                                ("room=r", b'{"n": NaN}')):
                async with http.post(f"{base}/demo/publish?{query}", data=body) as response:
                    assert response.status == 400, (query, body)
                    assert (await response.json())["error"].startswith("cannot publish")
            async with http.get(f"{base}/demo/handled") as response:
                assert await response.json() == []
        assert (await app[SX].store.bounds("r")).head == 1  # nothing bad was logged
    finally:
        await runner.cleanup()


async def test_private_rooms_keep_user_rooms_to_their_user_and_the_rest_open(tmp_path):
    from shotx.client import JoinRefused, SxClient

    app = build_app("memory", None, 0, private_rooms=True)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = SxClient(url)
    try:
        await client.connect("user-42")
        assert (await client.join("user-user-42"))["room"] == "user-user-42"
        assert (await client.join("user-room"))["room"] == "user-room"  # the demo room stays open
        assert (await client.join("lobby"))["room"] == "lobby"
        with pytest.raises(JoinRefused):
            await client.join("user-user123")  # token "valid"'s room
    finally:
        await client.close()
        await runner.cleanup()
