"""``voice-agent doctor``: checks every configured backend and prints one table.

Each check is cheap and bounded (short network timeouts), so the command answers in seconds even when a
service is down, and says what to do about each failure.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from server.provision import MODEL_PACKAGES, ModelMissing
from server.settings import Settings
from server.storage.engine import create_engine, database_url


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _tcp_reachable(host_port: str, timeout: float = 1.5) -> tuple[bool, str]:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True, f"{host_port} reachable"
    except (OSError, ValueError) as exc:
        return False, f"{host_port} unreachable: {exc}"


def _check_models() -> list[CheckResult]:
    results = []
    for pkg in MODEL_PACKAGES:
        try:
            results.append(CheckResult(f"model: {pkg.name}", True, str(pkg.path())))
        except ModelMissing as exc:
            results.append(CheckResult(f"model: {pkg.name}", False, str(exc)))
    return results


def _check_module(label: str, module: str, hint: str) -> CheckResult:
    found = importlib.util.find_spec(module) is not None
    return CheckResult(label, found, "installed" if found else hint)


def _check_ollama(settings: Settings) -> CheckResult:
    cfg = settings.agent.llm.ollama
    try:
        with urllib.request.urlopen(f"{cfg.host.rstrip('/')}/api/tags", timeout=2) as resp:
            body = resp.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return CheckResult("llm: ollama", False, f"{cfg.host} unreachable ({exc}); start it: scripts/ollama.sh start")
    if f'"{cfg.model}' not in body:
        return CheckResult("llm: ollama", False, f"model '{cfg.model}' not present; run: scripts/ollama.sh create-model")
    return CheckResult("llm: ollama", True, f"{cfg.host} serves {cfg.model}")


def _check_llm(settings: Settings) -> CheckResult:
    if settings.agent.llm.backend == "ollama":
        return _check_ollama(settings)
    return _check_module("llm: llama.cpp", "llama_cpp", "pip install llama-cpp-python (scripts/build_llamacpp_wheel.sh)")


def _check_bus(settings: Settings) -> CheckResult:
    if settings.bus.backend == "embedded":
        return CheckResult("bus: embedded", True, "in-process")
    ok, detail = _tcp_reachable(settings.bus.rocketmq.endpoints)
    return CheckResult("bus: rocketmq", ok, detail if ok else f"{detail}; start it: scripts/rocketmq.sh start")


def _check_database(label: str, target: str, connect_timeout_s: float) -> CheckResult:
    """SQLite: where the file goes; PostgreSQL: connect and ``SELECT 1`` the way the stores do
    (``server.storage.engine``: SQLAlchemy and psycopg 3)."""
    if not target.startswith(("postgresql://", "postgres://")):
        return CheckResult(label, True, f"SQLite file {Path(target).resolve()}")
    try:
        engine = create_engine(target, connect_timeout_s=connect_timeout_s, statement_timeout_s=5.0)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        return CheckResult(label, False, f"cannot connect: {getattr(exc, 'orig', None) or exc}")
    return CheckResult(label, True, f"{database_url(target).render_as_string()} connected")


def _check_store(settings: Settings) -> CheckResult:
    if settings.knowledge.store == "embedded":
        parent = Path(settings.knowledge.embedded_path).resolve().parent
        return CheckResult("knowledge: embedded", True, f"SQLite file under {parent}")
    dsn = settings.knowledge.postgres_dsn
    if not dsn:
        return CheckResult("knowledge: postgres", False, "knowledge.postgres_dsn is not set")
    return _check_database("knowledge: postgres", dsn, min(2.0, settings.knowledge.connect_timeout_s))


def _check_storage(settings: Settings) -> list[CheckResult]:
    timeout = min(2.0, settings.storage.connect_timeout_s)
    return [
        _check_database("storage: call records", settings.storage.records, timeout),
        _check_database("storage: delivery ledger", settings.storage.delivery_ledger, timeout),
    ]


def _check_binary(label: str, name: str, hint: str) -> CheckResult:
    path = shutil.which(name)
    return CheckResult(label, path is not None, path or hint)


def run_checks(settings: Settings) -> list[CheckResult]:
    checks: list[Callable[[], CheckResult | list[CheckResult]]] = [
        _check_models,
        lambda: _check_module("stt: faster-whisper", "faster_whisper", "pip install faster-whisper"),
        lambda: _check_module("tts: piper", "piper", "pip install piper-tts"),
        lambda: _check_binary("tts: espeak-ng (fallback)", "espeak-ng", "apt-get install espeak-ng"),
        lambda: _check_llm(settings),
        lambda: _check_bus(settings),
        lambda: _check_store(settings),
        lambda: _check_storage(settings),
    ]
    results: list[CheckResult] = []
    for check in checks:
        out = check()
        results.extend(out if isinstance(out, list) else [out])
    return results


def format_table(results: list[CheckResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{r.name:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.detail}" for r in results]
    return "\n".join(lines)
