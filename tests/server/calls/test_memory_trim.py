"""``HeapTrimmer``: a call ending trims the heap in a worker thread, at most once per interval."""

from __future__ import annotations

import asyncio
import sys

import numpy as np
import pytest

from server.calls.memory_trim import HeapTrimmer


class _Call:
    call_id, user_id, tenant = "c1", "u1", "default"


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's (Linux)")
async def test_a_call_ending_gives_freed_heap_back_to_the_os() -> None:
    trimmer = HeapTrimmer(min_interval_s=0.2)
    assert trimmer.available, "glibc's malloc_trim not found"
    # Many small blocks freed out of order leave holes glibc keeps resident (what calls' buffers do).
    blocks = [
        np.ones(20_000, np.uint8) for _ in range(5_000)
    ]  # ~100 MB in small mallocs (below mmap's 128 KB)
    keep = blocks[::50]
    del blocks
    before = _rss_anon_kb()
    call = _Call()
    trimmer.call_unregistered(call)
    trimmer.call_unregistered(call)  # a second end while the first trim runs: no second task
    await asyncio.wait_for(trimmer._task, 5)  # type: ignore[arg-type]
    after = _rss_anon_kb()
    assert trimmer.trims == 1
    assert before - after > 50_000, (before, after)  # most of the ~98 MB freed went back
    trimmer.call_unregistered(call)  # the next end waits out the interval, then trims again
    await asyncio.wait_for(trimmer._task, 5)  # type: ignore[arg-type]
    assert trimmer.trims == 2 and len(keep) == 100
    await trimmer.stop()
