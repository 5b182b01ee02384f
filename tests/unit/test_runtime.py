"""A server process's settings (server/runtime.py), each checked in a fresh interpreter:
they are process-wide, and the test process must keep its own."""

import subprocess
import sys
import textwrap

import pytest

from shotx.server.runtime import tune_collector


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_tuning_freezes_what_lives_and_raises_only_the_young_threshold():
    out = run_python("""
        import gc
        from shotx.server.runtime import YOUNG_THRESHOLD, tune_collector
        before = gc.get_threshold()
        tune_collector()
        after = gc.get_threshold()
        print(before[1:] == after[1:], after[0] == YOUNG_THRESHOLD, gc.get_freeze_count() > 1000)
    """)
    assert out == "True True True"


def test_garbage_left_by_start_up_is_freed_before_the_freeze():
    out = run_python("""
        import gc, weakref
        from shotx.server.runtime import tune_collector
        class Node: pass
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle only a collection frees
        gone = weakref.ref(a)
        del a, b
        tune_collector()
        print(gone() is None)
    """)
    assert out == "True"


def test_the_event_loop_is_uvloops_when_installed():
    out = run_python("""
        from shotx.server.runtime import event_loop
        loop = event_loop()
        print(type(loop).__module__.split(".")[0])
        loop.close()
    """)
    try:
        import uvloop  # noqa: F401
    except ImportError:
        assert out == "asyncio"
    else:
        assert out == "uvloop"


def test_a_young_threshold_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        tune_collector(0)
