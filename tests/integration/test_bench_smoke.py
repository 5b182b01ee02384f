"""The benchmarks still run: tiny runs of each bench script, no figure judged.

The README's speed claims rest on `bench/`; a refactor that breaks a bench
script (as moving build.py's Pyodide part once broke the browser bench) must
fail here, not at the next rerun of the figures.
"""

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


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
    if not (BENCH / "node_modules" / "socket.io-client").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True, timeout=300,
                       capture_output=True)
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
