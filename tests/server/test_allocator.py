"""``tune_allocator``: blocks of a few hundred kilobytes freed out of order go back to the OS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A 4 MB block freed raises glibc's dynamic mmap threshold to 4 MB; 300 blocks of 300 KB then come from the
# heap, and with every 30th kept alive the freed ones are holes the heap cannot give back.
_CHURN = """
import sys
import numpy as np
from server.allocator import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator(arena_max=2, mmap_threshold_kb=128)
big = np.ones(4 << 20, np.uint8)
del big
blocks = [np.ones(300_000, np.uint8) for _ in range(300)]
keep = blocks[::30]
del blocks
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")))
"""


def _rss_anon_kb(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, mode], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_freed_blocks_go_back_to_the_os_with_a_fixed_mmap_threshold() -> None:
    default, tuned = _rss_anon_kb("default"), _rss_anon_kb("tuned")
    # ~90 MB allocated, 10 blocks (3 MB) kept: glibc's defaults keep the holes, the tuned allocator not.
    assert default - tuned > 50_000, (default, tuned)
