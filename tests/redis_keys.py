"""The test Redis, for every test folder: reach it (or skip / fail in CI) and
give a test a key prefix of its own, deleted afterwards.

Tests may touch only keys under their own prefix: the machine's Redis is shared.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ci_env import in_ci

REDIS_URL = os.environ.get("SHOTX_TEST_REDIS", "redis://127.0.0.1:6379/0")


def reachable_redis(url: str = REDIS_URL) -> Any:
    """A client of the test Redis; without one, a skip on a laptop and a failure in CI."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except (redis.ConnectionError, OSError) as error:
        client.close()
        if in_ci():
            pytest.fail(f"CI needs a Redis at {url}: {error}")
        pytest.skip(f"no Redis at {url}")
    return client


@contextmanager
def own_prefix(kind: str, url: str = REDIS_URL) -> Iterator[str]:
    """``shotx-<kind>-<random>``: the test's keys, deleted when the block ends."""
    client = reachable_redis(url)
    prefix = f"shotx-{kind}-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
