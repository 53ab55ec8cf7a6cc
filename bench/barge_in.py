"""Barge-in benchmark: how fast the agent goes quiet when the caller cuts in, from the caller's side.

    .venv/bin/python bench/barge_in.py [--repeats 2]

Each run is one aiortc call (the scenario of ``tests/server/calls/test_call_behaviour.py``): the agent
speaks a long greeting, the caller says one of five interruptions (Piper speech) 0.8 s into it; measured
from the caller's first word handed to its Opus encoder to the start of silence on the track it receives
(through a 2-frame receive buffer like Chromium's), plus the server's view (caller onset -> agent silent).
Target: the mission's 150 ms median. Tight timing: run it on a quiet machine; the load average is printed.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server.calls.test_call_behaviour import BARGE_INS, _barge_in_once

TARGET_S = 0.150


async def main(repeats: int) -> dict[str, object]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-barge-in-") as tmp:
        for r in range(repeats):
            for i, text in enumerate(BARGE_INS):
                with pytest.MonkeyPatch.context() as patch:
                    run = await _barge_in_once(Path(tmp) / f"{r}-{i}", patch, text)
                runs.append(run)
                print(f"{text.split(',')[0]!r}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in run.items()))
    caller = sorted(run["caller"] for run in runs)
    onset = sorted(run["onset_to_stop"] for run in runs)
    return {
        "bench": "barge_in",
        "runs": len(runs),
        "caller_to_silence_ms_p50": round(statistics.median(caller) * 1000, 1),
        "caller_to_silence_ms_max": round(caller[-1] * 1000, 1),
        "server_onset_to_silence_ms_p50": round(statistics.median(onset) * 1000, 1),
        "target_ms": TARGET_S * 1000,
        "meets_target": statistics.median(caller) <= TARGET_S,
        "loadavg": list(os.getloadavg()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="times each of the five interruptions is said")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.repeats))))
