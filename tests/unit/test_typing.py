"""Type hints are checked: strictly on the pure modules, normally everywhere.

mypy cannot follow setuptools' package-dir mapping (server/ -> shotx.server),
so the check runs on a temporary tree of symlinks with the installed names.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STRICT = ["client/protocol.py", "client/core.py", "client/errors.py", "client/store.py", "client/sender.py",
          "client/inbox.py", "client/outbox_limits.py", "server/limits.py", "server/room_policy.py", "server/room_locks.py", "server/store.py",
          "server/replies.py", "server/sticky.py"]


def mypy(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--explicit-package-bases", "--no-error-summary",
                           "--cache-dir", str(ROOT / "build" / "mypy-cache"), *args],
                          cwd=tree, capture_output=True, text=True, timeout=300)


def test_mypy(tmp_path):
    package = tmp_path / "shotx"
    package.mkdir()
    (package / "client").symlink_to(ROOT / "browser_client")
    (package / "server").symlink_to(ROOT / "server")
    strict = mypy(tmp_path, "--strict", *[f"shotx/{name}" for name in STRICT])
    assert strict.returncode == 0, strict.stdout + strict.stderr
    everything = mypy(tmp_path, "shotx")
    assert everything.returncode == 0, everything.stdout + everything.stderr
