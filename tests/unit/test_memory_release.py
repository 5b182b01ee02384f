"""When memory is given back after disconnects (server/memory_release.py): the pure policy."""

import sys

import pytest

from shotx.server.memory_release import Due, ReleasePolicy, glibc_malloc_trim


def test_no_pass_before_every_connections_have_closed():
    policy = ReleasePolicy(every=3)
    assert [policy.closed() for _ in range(3)] == [Due.NO, Due.NO, Due.WHEN_QUIET]


def test_a_pass_resets_the_count():
    policy = ReleasePolicy(every=2)
    policy.closed(), policy.closed()
    policy.released()
    assert policy.closed() is Due.NO


def test_churn_that_never_pauses_gets_a_pass_at_four_times_every():
    policy = ReleasePolicy(every=2)
    assert [policy.closed() for _ in range(8)][-2:] == [Due.WHEN_QUIET, Due.NOW]


def test_every_must_be_positive():
    with pytest.raises(ValueError, match="every must be at least 1"):
        ReleasePolicy(every=0)


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_trim exists on Linux/glibc only")
def test_malloc_trim_is_found_on_linux_glibc():
    trim = glibc_malloc_trim()
    assert trim is not None and trim() in (0, 1)
