"""The benchmarks still run: tiny runs of each bench script, no figure judged.

The README's speed claims rest on `bench/`; a refactor that breaks a bench
script (as moving build.py's Pyodide part once broke the browser bench) must
fail here, not at the next rerun of the figures. The Node reference
(`bench/node_server.mjs`) is held to the protocol our client speaks, so
its figures are those of a server doing the same work.
"""

import argparse
import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ci_env import in_ci  # tests/ is on sys.path (pyproject.toml)
from shotx.client import AuthError

BENCH = Path(__file__).resolve().parents[2] / "bench"


def node_modules():
    """bench/node_modules as `bench/run.py` installs it (socket.io-client and socket.io from the lock)."""
    if shutil.which("node") is None:
        (pytest.fail if in_ci() else pytest.skip)("node is needed for the Node load generator and reference")
    if not all((BENCH / "node_modules" / name).is_dir() for name in ("socket.io-client", "socket.io")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=300,
                       capture_output=True)


@pytest.fixture
def bench_server(tmp_path):
    """``bench_server(kind)``: a server the benchmark measures (node, shotx or bare), on loopback; its URL."""
    started = []

    def start(kind):
        node_modules()
        if kind == "node":
            command = ["node", str(BENCH / "node_server.mjs")]
        else:
            command = [sys.executable, str(BENCH / "servers.py"), kind, "--db", str(tmp_path / f"{kind}.sqlite3")]
        process = subprocess.Popen(command, cwd=BENCH, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        started.append(process)
        line = process.stdout.readline()
        assert line.startswith("READY "), line
        return f"http://127.0.0.1:{line.split()[1]}"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def json_lines(*args):
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_layer_cost_runs():
    rows = json_lines(BENCH / "layer_cost.py", "--requests", "200", "--clients", "1", "10", "--json")
    assert {(row["handler"], row["clients"]) for row in rows} == {
        (kind, clients) for kind in ("bare", "memory", "sqlite") for clients in (1, 10)}
    assert all(row["cpu_us"] > 0 for row in rows)


def test_room_send_runs_every_store(redis_prefix, redis_url):
    """Needs Node's socket.io-client (bench/node_modules), as `bench/run.py` installs it."""
    node_modules()
    rows = json_lines(BENCH / "room_send.py", "--sends", "200", "--json", "--redis", redis_url,
                      "--stores", "sqlite", "memory", "redis")
    assert {row["store"] for row in rows} == {"sqlite", "memory", "redis"} and len(rows) == 10
    assert all(row["sends"] == 200 and row["cpu_us"] > 0 for row in rows)


def test_retention_bench_runs_on_sqlite_and_redis(redis_url):
    done = subprocess.run([sys.executable, BENCH / "retention.py", "--rows", "2000", "--rooms", "4", "--replies",
                           "1000", "--redis", redis_url, "--redis-rows", "2000"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[1:3] for line in done.stdout.splitlines() if line.startswith("| retention")
            or line.startswith("| expiry")]
    assert [(name.strip(), removed.strip()) for name, removed in rows] == [
        ("retention", "1,600"), ("expiry", "800"), ("retention", "1,600"), ("expiry", "160")]


def test_the_browser_bench_builds_its_wheel_from_the_work_tree(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_browser_site", BENCH / "browser_site.py")
    site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site)
    with zipfile.ZipFile(site.fresh_wheel(tmp_path)) as wheel:
        names = set(wheel.namelist())
    assert "shotx/client/__pycache__/client.cpython-314.pyc" in names and "shotx/client/client.pyc" in names


@pytest.mark.parametrize("kind", ["node", "shotx"])
async def test_the_node_reference_answers_our_client_as_our_server_does(bench_server, make_client, kind):
    """Our own client against each: the refusals, auth_success, an ack, a join answer, a room publish."""
    url = bench_server(kind)
    for token, code in (("", "AUTH_NULL"), ("nope", "AUTH_FAIL")):
        with pytest.raises(AuthError) as refused:
            await asyncio.wait_for(make_client(url, reconnection=False).connect(token), 10)
        assert refused.value.code == code
    client = make_client(url, reconnection=False)
    assert await client.connect("valid") == {"user_id": "bench"}
    assert await client.send("test_route", {"n": 1}) == {"status": "ok", "data": {"n": 1}, "auth": {"user_id": "bench"}}
    got, three = [], asyncio.get_running_loop().create_future()
    client.on_message("notification", lambda data, meta=None: got.append(data) or len(got) == 3
                      and three.set_result(None))
    answer = await client.join("bench-room")
    assert set(answer) == {"room", "since", "head", "replayed", "missed", "after", "until", "epoch"}
    assert (answer["room"], answer["head"], answer["replayed"]) == ("bench-room", 0, 0)
    published = await client.send("bench_publish", {"room": "bench-room", "count": 3})
    assert published == {"room": "bench-room", "sent": 3, "head": 3}
    await asyncio.wait_for(three, 10)
    assert [data["n"] for data in got] == [0, 1, 2]
    assert await client.send("bench_stats", {}) == {"sockets": 1}


def test_every_live_scenario_runs_against_ours_bare_and_node(tmp_path):
    """Tiny fan-out, connect and memory rounds on three servers, then the report with its ratios to Node."""
    node_modules()
    sys.path.insert(0, str(BENCH))
    try:
        import live_rounds
        import report
        from processes import Children
    finally:
        sys.path.remove(str(BENCH))
    python = [sys.executable, str(BENCH / "servers.py")]
    servers = [("shotx-sqlite", [*python, "shotx"], None), ("bare", [*python, "bare"], None),
               ("node", ["node", str(BENCH / "node_server.mjs")], None)]
    args = argparse.Namespace(scenarios=["ack", "fanout", "connect", "memory"], node=True, warmup=0.2, duration=0.3,
                              bursts=1, fanout_members=(10,), connects=20, wave=20, memory_clients=40,
                              trace_memory=None, quick=True, rounds=1, sends=0, candidate=None)
    loadgen = ["node", str(BENCH / "loadgen.mjs")]
    children = Children()
    try:
        rows = {name: [] for name in ("ack", "room", "layer")}
        rows.update(live_rounds.live_round(children, loadgen, servers, 0, args))
        rows["ack"] = [row for row in rows["ack"] if row["clients"] == 1]
        rows["memory"] = live_rounds.memory_round(children, loadgen, servers, 0, args)
    finally:
        children.stop_all()
    assert {(row["server"], row["members"]) for row in rows["fanout"]} == {(name, 10) for name, _, _ in servers}
    assert all(row["errors"] == 0 and row["deliveries"] == 10 * 20 and row["cpu_us_per_delivery"] is not None
               for row in rows["fanout"])
    assert all(row["clients"] == 20 and row["cpu_us_per_connect"] is not None for row in rows["connect"])
    assert all(row["clients"] == 40 and row["after_mb"] > 0 and row["before_mb"] > 0 for row in rows["memory"])
    machine = {**report.machine_info(loadgen), "steal": 0.0, "loadavg_end": ["0", "0", "0"], "elapsed_s": 1.0}
    text = report.markdown(rows, machine, args)
    for heading in ("## Ack round trips", "## Room fan-out", "## Connects", "## Memory"):
        assert heading in text
    assert "× node" in text and "fan-out to" not in text.split("## Targets")[0]
