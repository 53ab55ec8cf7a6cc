"""SIP call-setup benchmark: INVITE -> 200 OK of the in-process user agent, called by SIPp over loopback.

    .venv/bin/python bench/sip_media.py [--calls 30] [--rate 5] [--hold-ms 1000]

The user agent (``server.transports.sip``) answers every call at once and plays a tone; SIPp places
``--calls`` calls at ``--rate`` per second, each held ``--hold-ms`` and hung up. Two figures per call:
- ``call_setup_s``: INVITE received -> 200 OK sent, measured inside the user agent (what the issue's
  ``call_setup_s_p50`` means: our processing, RTP socket bind and SDP answer included);
- ``client_setup_s``: INVITE sent -> 200 OK received, measured by SIPp (adds the loopback round trip and
  SIPp's own scheduling; coarse: SIPp stamps both ends on its scheduler tick, in whole milliseconds).
Not covered: speech, the agent, TURN/NAT, TCP. Prints the figures with the load average and ends with one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.transports.sip import SipCall, SipConfig, SipUserAgent
from speech.frames import AudioFrame
from tests.fixtures.sipp import Sipp

TARGET_SETUP_S = 0.05
SCENARIO = (ROOT / "tests/server/transports/sip/scenarios/caller_short.xml").read_text()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def run(calls: int, rate: float, hold_ms: int, workdir: Path) -> dict[str, Any]:
    answered: list[SipCall] = []
    tone = (3000 * np.sin(np.arange(160) * 2 * np.pi * 440 / 8000)).astype(np.int16)

    async def on_call(call: SipCall) -> None:
        answered.append(call)
        call.play(lambda: AudioFrame(tone, 8000))
        await call.wait_ended()

    agent = SipUserAgent(SipConfig(enabled=True, udp_port=0, max_calls=max(50, calls)), on_call)
    await agent.start()
    sipp = Sipp(workdir)
    try:
        scenario = workdir / "caller.xml"
        scenario.write_text(
            SCENARIO.replace("{{hold_ms}}", str(hold_ms)).replace(
                '<recv response="200"/>', '<recv response="200" rtd="true"/>', 1
            )
        )
        run = sipp.start(
            scenario,
            f"127.0.0.1:{agent.port}",
            calls=calls,
            rate=rate,
            limit=calls,
            extra=("-trace_rtt", "-rtt_freq", "1"),
        )
        code = await run.finished(calls / rate + hold_ms / 1000 + 60)
        if code != 0:
            raise RuntimeError(f"SIPp failed ({code})\n{run.logs()}")
        await asyncio.sleep(0.5)
        client = _rtt_seconds(run.workdir)
    finally:
        sipp.stop_all()
        await agent.stop()
    setup = [c.timings.setup_s for c in answered if c.timings.setup_s is not None]
    return {
        "calls": len(setup),
        "call_setup_s_p50": round(percentile(setup, 50), 4),
        "call_setup_s_p95": round(percentile(setup, 95), 4),
        "call_setup_s_max": round(max(setup), 4) if setup else None,
        "client_setup_s_p50": round(percentile(client, 50), 4),
        "client_setup_s_p95": round(percentile(client, 95), 4),
        "rtp_packets_sent_per_call_p50": statistics.median(c.rtp_stats.packets_sent for c in answered)
        if answered
        else 0,
        "target_call_setup_s_p50": TARGET_SETUP_S,
    }


def _rtt_seconds(directory: Path) -> list[float]:
    """SIPp's -trace_rtt file: a 'Date_ms;response_time_ms;rtd_no' header, then one line per call (whole ms)."""
    values = []
    for path in directory.glob("*_rtt.csv"):
        lines = path.read_text().splitlines()
        if not lines:
            continue
        column = lines[0].split(";").index("response_time_ms")
        for line in lines[1:]:
            fields = line.split(";")
            if len(fields) > column:
                values.append(float(fields[column]) / 1000.0)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--rate", type=float, default=5.0, help="calls started per second")
    parser.add_argument("--hold-ms", type=int, default=1000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.monotonic()
    summary = asyncio.run(
        run(args.calls, args.rate, args.hold_ms, Path(tempfile.mkdtemp(prefix="sip-media-")))
    )
    summary["wall_s"] = round(time.monotonic() - started, 1)
    summary["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    summary["cpus"] = os.cpu_count()
    print(
        f"call setup (INVITE received -> 200 OK sent) p50 {summary['call_setup_s_p50'] * 1000:.1f} ms, "
        f"p95 {summary['call_setup_s_p95'] * 1000:.1f} ms over {summary['calls']} calls "
        f"(target p50 <= {TARGET_SETUP_S * 1000:.0f} ms); SIPp-side p50 {summary['client_setup_s_p50'] * 1000:.1f} ms"
    )
    print(
        f"load average (1 min) before/after: {summary['loadavg_1m_before_after']} on {summary['cpus']} CPUs"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
