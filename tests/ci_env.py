"""One reading of the ``CI`` variable for every test that checks it.

In CI a missing prerequisite (Chromium, the web bundle, Redis, Node) must
fail, never skip: a run that skips everything would look green. On a
developer machine the same tests skip with a message saying what to install.

    >>> sorted(TRUTHY)  # CI=True, CI=yes, CI=1 count; CI=0, CI=false, unset do not
    ['1', 'true', 'yes']
"""

from __future__ import annotations

import os

TRUTHY = frozenset({"1", "true", "yes"})


def in_ci() -> bool:
    """True when ``CI`` is set to 1, true or yes (any case, spaces ignored)."""
    return os.environ.get("CI", "").strip().lower() in TRUTHY
