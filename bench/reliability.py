"""Reliability benchmark: call churn, overload refusal and real faults with their recovery times.

    .venv/bin/python bench/reliability.py [--calls 1000] [--concurrency 3] [--max-calls 8]
                                          [--faults broker,database,ollama,node,disk] [--skip-churn]

A 1,000-call churn takes about 40 min on 2 shared cores (~2.4 s a call at concurrency 3).

1. Churn (``tests/faults/churn.py``): ``--calls`` real aiortc calls against one ``voice-agent serve``
   process, ``--concurrency`` at a time, each with one spoken turn (Piper speech in, the start of the
   spoken reply out); the node's RSS, descriptors, asyncio tasks and threads after the churn against
   their values after a warm-up.
2. Overload, on the same node (``server.max_calls`` = ``--max-calls``): that many calls held open, one
   more offer must get 503 + Retry-After at once, a held caller must still be answered, and a new call
   must get a line once one hangs up.
3. Faults (``tests/faults/test_*_faults.py`` scenarios): RocketMQ broker+proxy SIGKILLed mid-call and
   during a campaign; PostgreSQL (ledger, call records, knowledge store, job store) stopped mid-call for
   15 s; Ollama SIGKILLed mid-reply and started again; one of two nodes (shared RocketMQ and PostgreSQL)
   SIGKILLed while speaking a prompt, its user calling back to the survivor; the disk under the SQLite
   files and the spool (a 24 MB tmpfs; needs root, else reported as not run) full for 15 s. Each reports its checks, where every prompt
   ended up (spoken / held / expired / dead-lettered; anything else is lost) and the recovery time: seconds from the service being back to the system
   working again (the prompt of the outage spoken; for Ollama, the first real answer; for the node, from
   the kill to its user having heard the interrupted and the held prompt on the survivor; for the disk,
   from the space freed to the waiting call record written and /readyz ready).

Tight figures on a shared 2-core box are noisy: the load average is printed. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp

from tests.faults.accounting import FaultReport
from tests.faults.churn import QUESTION, churn, churn_node
from tests.server.caller import RTCCaller, synthesize_speech

FAULTS = ("broker", "database", "ollama", "node", "disk")


async def overload(base_url: str, max_calls: int) -> dict[str, Any]:
    """``max_calls`` calls held, one more refused; the held calls keep working; a freed line is taken."""
    held = [RTCCaller(base_url, user_id=f"overload-{i}") for i in range(max_calls)]
    result: dict[str, Any] = {"max_calls": max_calls}
    try:
        for caller in held:
            await asyncio.wait_for(caller.connect(), 30)
        extra = RTCCaller(base_url, user_id="overload-extra")
        extra.pc.addTrack(extra.track)  # a real audio offer: refused for the load, not for its shape
        await extra.pc.setLocalDescription(await extra.pc.createOffer())
        offer = {"sdp": extra.pc.localDescription.sdp, "type": "offer"}
        t0 = time.monotonic()
        url = f"{base_url}/api/calls/offer"  # with the caller's token: refused for the load, not for who it is
        async with aiohttp.ClientSession() as http, http.post(url, json=offer, headers=extra.headers) as resp:
            result["refusal_ms"] = round((time.monotonic() - t0) * 1000, 1)
            result["refused_status"] = resp.status
            result["retry_after"] = resp.headers.get("Retry-After")
        await extra.hangup()
        speech = await synthesize_speech(QUESTION)
        sent = await held[0].say(speech)
        result["held_call_reply_s"] = round(await held[0].reply_start(after=sent, timeout=60) - sent, 2)
        await held.pop().hangup()
        after = RTCCaller(base_url, user_id="overload-after")
        t0 = time.monotonic()
        while True:  # the slot comes back when the server has torn the call down
            try:
                await after.connect()
                break
            except RuntimeError:
                await after.hangup()
                if time.monotonic() - t0 > 20:
                    raise
                await asyncio.sleep(0.2)
                after = RTCCaller(base_url, user_id="overload-after")
        result["line_free_again_s"] = round(time.monotonic() - t0, 2)
        held.append(after)
    finally:
        for caller in held:
            await caller.hangup()
    result["ok"] = result.get("refused_status") == 503 and bool(result.get("retry_after"))
    return result


async def run_faults(names: list[str], workdir: Path) -> list[FaultReport]:
    reports: list[FaultReport] = []
    for name in names:
        (workdir / name).mkdir(parents=True)
    if "broker" in names:
        from tests.faults.services import OwnBroker
        from tests.faults.test_broker_faults import (
            broker_deployment,
            run_broker_kill_during_campaign,
            run_broker_kill_mid_call,
        )

        broker = OwnBroker()
        await asyncio.to_thread(broker.start)
        try:
            async with broker_deployment(broker, workdir / "broker") as deployment:
                for scenario in (run_broker_kill_mid_call, run_broker_kill_during_campaign):
                    reports.append(await _safely(scenario.__name__, scenario(deployment)))
        finally:
            await asyncio.to_thread(broker.destroy)
    if "database" in names:
        from tests.faults.services import OwnPostgres
        from tests.faults.test_database_faults import run_database_restart

        reports.append(await _on_own(OwnPostgres(), workdir / "database", run_database_restart))
    if "ollama" in names:
        from tests.faults.services import OwnOllama
        from tests.faults.test_model_server_faults import run_ollama_kill_mid_reply

        reports.append(await _on_own(OwnOllama(), workdir / "ollama", run_ollama_kill_mid_reply))
    if "node" in names:
        from tests.faults.services import OwnBroker, OwnPostgres
        from tests.faults.test_node_faults import run_node_kill

        broker, pg = OwnBroker(), OwnPostgres()
        await asyncio.gather(asyncio.to_thread(broker.start), asyncio.to_thread(pg.start))
        try:
            reports.append(await _safely("run_node_kill", run_node_kill(broker.endpoint, pg.dsn, workdir / "node")))
        finally:
            await asyncio.gather(asyncio.to_thread(broker.destroy), asyncio.to_thread(pg.destroy))
    if "disk" in names:
        from tests.faults.services import SmallDisk
        from tests.faults.test_disk_faults import DISK_MB, run_disk_full

        disk = SmallDisk(DISK_MB)
        why_not = await asyncio.to_thread(disk.mount)
        try:
            if why_not:
                print(json.dumps({"fault": "disk full", "not_run": why_not}))
            else:
                reports.append(await _safely("run_disk_full", run_disk_full(disk)))
        finally:
            await asyncio.to_thread(disk.destroy)
    return reports


async def _on_own(service: Any, workdir: Path, scenario: Any) -> FaultReport:
    """``scenario(service, workdir)`` on a service of its own, started here and destroyed after."""
    await asyncio.to_thread(service.start)
    try:
        return await _safely(scenario.__name__, scenario(service, workdir))
    finally:
        await asyncio.to_thread(service.destroy)


async def _safely(name: str, scenario: Any) -> FaultReport:
    """A scenario that raised did not survive; the bench goes on with the next one."""
    try:
        report: FaultReport = await scenario
    except Exception as exc:  # noqa: BLE001 - reported as a failed fault
        report = FaultReport(name, checks={"scenario ran to its end": False}, notes=[f"{type(exc).__name__}: {exc}"])
    print(json.dumps(report.as_dict()))
    return report


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"bench": "reliability", "loadavg_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        if not args.skip_churn:
            node = churn_node(Path(tmp) / "churn", max_calls=args.max_calls)
            node.start()
            try:
                result = await churn(node.base_url, args.calls, concurrency=args.concurrency)
                print(f"churn: {json.dumps(result.as_dict())}")
                figures.update(
                    churn_calls=result.calls, churn_failed=result.failed, churn_seconds=result.seconds,
                    rss_growth_mb=result.rss_growth_mb, rss_mb_series=result.rss_mb_series, fds_leaked=result.fds_leaked,
                    tasks_leaked=result.tasks_leaked, threads_leaked=result.threads_leaked,
                    churn_reply_s_p50=result.reply_s_p50, warmup_calls=result.warmup_calls,
                    warmup_rss_mb_series=result.warmup_rss_mb_series,
                )
                load = await overload(node.base_url, args.max_calls)
                print(f"overload: {json.dumps(load)}")
                figures["overload"] = load
            finally:
                node.stop()
        names = [n for n in args.faults.split(",") if n]
        reports = await run_faults(names, Path(tmp) / "faults")
    recoveries = [r.recovery_s for r in reports if r.recovery_s is not None]
    figures.update(
        faults_run=len(reports),
        faults_survived=sum(r.survived for r in reports),
        faults={r.fault: {"survived": r.survived, "recovery_s": r.as_dict()["recovery_s"]} for r in reports},
        prompts_published=sum(r.prompts.published for r in reports),
        prompts_lost=sum(len(r.prompts.lost) for r in reports),
        recovery_s_max=round(max(recoveries), 1) if recoveries else None,
        loadavg_end=list(os.getloadavg()),
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls in the churn (after a warm-up until RSS is steady: tests/faults/churn.py)")
    parser.add_argument("--concurrency", type=int, default=3, help="calls at a time in the churn")
    parser.add_argument("--max-calls", type=int, default=8, help="the node's server.max_calls (overload phase)")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma list of {', '.join(FAULTS)} (empty: none)")
    parser.add_argument("--skip-churn", action="store_true", help="faults only")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
