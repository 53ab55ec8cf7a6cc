"""The proactive loop end to end: real nodes, real audio, the embedded bus or a real RocketMQ.

Two deployments, each started once per session and shared by the tests (fresh user ids per test):
- ``embedded``: one node in this process (``server.node.VoiceNode``; the scheduler runs inside it), so a
  test can publish straight onto its in-process bus;
- ``rocketmq``: ``voice-agent scheduler`` plus two ``voice-agent serve`` nodes (``node-a``, ``node-b``) in
  child processes, on one broker (session fixture) and one delivery-ledger file. A node answers
  ``/readyz`` only after its consumer group receives, so nothing published afterwards is missed.
The caller is a browser-free aiortc client (``tests.server.caller.RTCCaller``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from messaging.schemas import ProactivePrompt
from server.settings import Settings, load_settings
from server.storage.delivery_ledger import SqlDeliveryLedger, open_delivery_ledger
from tests.server.caller import TEST_CALL_SECRET, RTCCaller, ServerProcess, free_port

ROOT_DIR = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "e2e-admin"
NODE_A, NODE_B = "node-a", "node-b"


def common_env(workdir: Path) -> dict[str, str]:
    """What every process of one deployment shares: ledger, scheduler database, fast campaign sync."""
    return {
        "VOICE_AGENT__SERVER__ADMIN_TOKEN": ADMIN_TOKEN,
        "VOICE_AGENT__SERVER__CALL_TOKENS__SECRET": TEST_CALL_SECRET,
        "VOICE_AGENT__STORAGE__DELIVERY_LEDGER": str(workdir / "ledger.sqlite3"),
        "VOICE_AGENT__SCHEDULER__JOBSTORE_URL": f"sqlite:///{workdir / 'jobs.sqlite3'}",
        "VOICE_AGENT__SCHEDULER__CAMPAIGN_SYNC_INTERVAL_S": "1",
        "VOICE_AGENT__SCHEDULER__PER_USER_MIN_INTERVAL_S": "0",
        "VOICE_AGENT__AGENT__FIRST_TOKEN_TIMEOUT_S": "20",
    }


def rocketmq_env(endpoint: str) -> dict[str, str]:
    return {
        "VOICE_AGENT__BUS__BACKEND": "rocketmq",
        "VOICE_AGENT__BUS__ROCKETMQ__ENDPOINTS": endpoint,
        "VOICE_AGENT__BUS__ROCKETMQ__RECEIVE_WAIT_S": "2",
    }


class SchedulerProcess:
    """``voice-agent scheduler`` in a child process; ready once it logged that it runs."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.log_path = workdir / "scheduler.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> SchedulerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "scheduler"],
            cwd=ROOT_DIR,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scheduler exited with {self.proc.returncode}:\n{self.log_tail()}")
            if b"scheduler running" in self.log_path.read_bytes():
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"scheduler not running within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class AdminAPI:
    """The admin API of one node (``/api/admin``) and its call records."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession(headers=self.headers) as http,
            http.request(method, self.base_url + path, json=body) as resp,
        ):
            data = await resp.json()
            if resp.status >= 300:
                raise AssertionError(f"{method} {path} -> {resp.status}: {data}")
            return data

    async def create_campaign(self, name: str, user_id: str, message: str, at: float) -> dict[str, Any]:
        at_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}+00:00"
        spec = {
            "name": name,
            "audience": {"user_ids": [user_id]},
            "message": message,
            "schedule": {"at": at_iso},
        }
        return await self._request("POST", "/api/admin/campaigns", spec)  # type: ignore[no-any-return]

    async def deliveries(self, campaign_id: str) -> list[dict[str, Any]]:
        data = await self._request("GET", f"/api/admin/campaigns/{campaign_id}/deliveries")
        return data["deliveries"]  # type: ignore[no-any-return]

    async def send_now(self, user_id: str, text: str, ttl_s: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": user_id, "text": text}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return await self._request("POST", "/api/admin/prompts", body)  # type: ignore[no-any-return]

    async def calls_of(self, user_id: str) -> list[dict[str, Any]]:
        return (await self._request("GET", f"/api/calls?user_id={user_id}"))["calls"]  # type: ignore[no-any-return]

    async def call_record(self, call_id: str) -> dict[str, Any]:
        return await self._request("GET", f"/api/calls/{call_id}")  # type: ignore[no-any-return]


@dataclass
class Deployment:
    """What a test needs from one deployment, whatever its bus."""

    backend: str
    call_url: str  # the node the test user calls (node B on RocketMQ)
    admin: AdminAPI  # admin API of the node holding the call
    other_admin: AdminAPI | None  # RocketMQ: node A, which never holds the test users' calls
    ledger_path: Path
    publish_fn: Any

    async def publish(self, prompt: ProactivePrompt) -> None:
        await self.publish_fn(prompt)

    def ledger(self) -> SqlDeliveryLedger:
        return open_delivery_ledger(self.ledger_path)

    def caller(self, user_id: str) -> RTCCaller:
        return RTCCaller(self.call_url, user_id=user_id)


def new_user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def embedded_settings(workdir: Path) -> Settings:
    settings = load_settings(None, environ={})
    s = settings.server
    s.host, s.port, s.node_id, s.admin_token = "127.0.0.1", free_port(), "solo", ADMIN_TOKEN
    s.call_tokens.secret = TEST_CALL_SECRET  # callers are users: the test mints their tokens
    s.rag = False
    settings.storage.records = str(workdir / "calls.sqlite3")
    settings.agent.memory_path = str(workdir / "memory.sqlite3")
    settings.agent.first_token_timeout_s = 20.0
    settings.storage.delivery_ledger = str(workdir / "ledger.sqlite3")
    settings.scheduler.jobstore_url = f"sqlite:///{workdir / 'jobs.sqlite3'}"
    settings.scheduler.campaign_sync_interval_s = 1
    settings.scheduler.per_user_min_interval_s = 0
    return settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def embedded_deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    from server.node import VoiceNode

    workdir = tmp_path_factory.mktemp("e2e-embedded")
    node = VoiceNode(embedded_settings(workdir))
    await node.start()

    async def publish(prompt: ProactivePrompt) -> None:
        await node.bus.publish(node.settings.bus.topic_proactive, prompt.to_bytes(), key=prompt.user_id)

    try:
        yield Deployment(
            "embedded", node.base_url, AdminAPI(node.base_url), None, workdir / "ledger.sqlite3", publish
        )
    finally:
        await node.stop()


@pytest.fixture(scope="session")
def rocketmq_processes(
    rocketmq_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ServerProcess, ServerProcess]]:
    """Scheduler, node A and node B on the session's broker; started together (models load in parallel)."""
    workdir = tmp_path_factory.mktemp("e2e-rocketmq")
    env = {**common_env(workdir), **rocketmq_env(rocketmq_endpoint)}
    scheduler = SchedulerProcess(workdir / "scheduler", env)
    nodes = [
        ServerProcess(workdir / node_id, env={**env, "VOICE_AGENT__SERVER__NODE_ID": node_id})
        for node_id in (NODE_A, NODE_B)
    ]
    try:
        _start_together(scheduler, *nodes)
        yield workdir, nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()
        scheduler.stop()


def _start_together(scheduler: SchedulerProcess, *nodes: ServerProcess) -> None:
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(len(nodes) + 1) as pool:
        futures: list[Future[Any]] = [pool.submit(scheduler.start), *(pool.submit(n.start) for n in nodes)]
        for future in futures:
            future.result()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def rocketmq_deployment(
    rocketmq_processes: tuple[Path, ServerProcess, ServerProcess], rocketmq_endpoint: str
) -> AsyncIterator[Deployment]:
    from messaging.config import BusConfig, RocketMQConfig
    from messaging.registry import create_bus

    workdir, node_a, node_b = rocketmq_processes
    bus = create_bus(BusConfig(backend="rocketmq", rocketmq=RocketMQConfig(endpoints=rocketmq_endpoint)))
    await bus.start()

    async def publish(prompt: ProactivePrompt) -> None:
        await bus.publish("voice_proactive", prompt.to_bytes(), key=prompt.user_id)

    try:
        yield Deployment(
            "rocketmq",
            node_b.base_url,
            AdminAPI(node_b.base_url),
            AdminAPI(node_a.base_url),
            workdir / "ledger.sqlite3",
            publish,
        )
    finally:
        await bus.close()


@pytest.fixture
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """Parametrize a test with ``@pytest.mark.parametrize("deployment", [...], indirect=True)``."""
    name = request.param
    fixture = "embedded_deployment" if name == "embedded" else "rocketmq_deployment"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]


async def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll the async ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {value!r}")
        await asyncio.sleep(interval)
