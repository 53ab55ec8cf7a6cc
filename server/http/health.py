"""What ``GET /healthz`` reports: the versions and backends this node runs, for operators and doctor-like checks."""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Any

from prometheus_client import Gauge

from server.settings import Settings

COMPONENT_UP = Gauge(
    "voice_agent_component_up", "1 when an optional component of the node started, 0 when it failed", ["component"]
)

_PACKAGES = ("voice-agent", "aiortc", "faster-whisper", "piper-tts", "llama_cpp_python", "ollama",
             "rocketmq-python-client", "apscheduler")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def health_report(settings: Settings) -> dict[str, Any]:
    llm = settings.agent.llm
    return {
        "status": "ok",
        "node_id": settings.server.node_id,
        "python": platform.python_version(),
        "versions": {name: v for name in _PACKAGES if (v := _version(name)) is not None},
        "backends": {
            "bus": settings.bus.backend,
            "llm": f"{llm.backend}:{llm.ollama.model if llm.backend == 'ollama' else 'smollm2-gguf'}",
            "stt": f"{settings.speech.stt.backend}:{settings.speech.stt.model}",
            "tts": settings.speech.tts.backend,
            "knowledge_store": settings.knowledge.store,
            "embeddings": settings.knowledge.embedding.backend,
        },
    }
