"""Churn: dozens of real calls against one node, a few at a time, each with one spoken turn; afterwards the
node holds what it held before (``tests/faults/churn.py``). ``bench/reliability.py`` runs 1,000 calls; CI
runs ``CALLS`` (about two minutes on 2 shared cores)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.churn import churn, churn_node
from tests.server.caller import ServerProcess

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CALLS = 40
# The target, 50 MB, is bench/reliability.py's (1,000 calls). Here RSS still drifts up after the
# warm-up: the node's level rises for a few hundred calls before it flattens (README figures). Over these 40
# calls on a shared 2-core box: +37 and +46 MB, +60 with two glibc arenas (2026-11-30, load 6-8): 50 fails
# now and then with nothing wrong. 75 still catches a leak of ~2 MB per call (decoded audio, a model state).
RSS_GROWTH_MB = 75


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = churn_node(tmp_path_factory.mktemp("churn"))
    proc.start()
    yield proc
    proc.stop()


async def test_calls_give_back_what_they_took(node: ServerProcess) -> None:
    result = await churn(node.base_url, CALLS, concurrency=3)
    print(f"\nchurn: {result.as_dict()}")
    assert result.failed == 0, result.errors
    # A leak per call shows as +CALLS; one thread or task more than the baseline is a worker pool that grew
    # or a timer between ticks on a loaded box (seen +1 in 1 of ~6 runs), not something the calls kept.
    leaks = (result.fds_leaked, result.tasks_leaked, result.threads_leaked)
    assert all(n <= 2 for n in leaks), result.as_dict()
    # After the warm-up (tests/faults/churn.py: until RSS stops setting new highs) what calls take they give
    # back, within the drift above; bench/reliability.py's 1,000 calls show smaller leaks.
    assert result.rss_growth_mb <= RSS_GROWTH_MB, result.as_dict()
