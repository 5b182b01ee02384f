"""An application on ``run_workers``, as the README shows it: ``python workers_app.py REDIS_URL PREFIX``.

Each worker answers ``whoami`` with its index; ``shout`` sends to ``news-room``.
"""

import sys

from aiohttp import web

from shotx.server import RedisStore, SxServer
from shotx.server.workers import run_workers


def make_app(worker: int) -> web.Application:
    app = web.Application()
    sx = SxServer(app, store=RedisStore(sys.argv[1], prefix=sys.argv[2]))
    sx.set_auth_handler(lambda token, socket: {"user": token})

    @sx.on_message("whoami")
    def whoami(data, socket):
        return {"worker": worker}

    @sx.on_message("shout")
    async def shout(data, socket):
        return await sx.to("news-room").send("news", data)

    return app


if __name__ == "__main__":
    sys.exit(run_workers(make_app, workers=2, port=0,
                         on_ready=lambda port: print(f"listening on http://127.0.0.1:{port}", flush=True)))
