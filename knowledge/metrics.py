"""Prometheus metrics of the knowledge base (``voice_agent_<what>_<unit>``), on the default registry."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

M = TypeVar("M", Counter, Gauge, Histogram)


def _metric(kind: type[M], name: str, doc: str, **kw: Any) -> M:
    existing = REGISTRY._names_to_collectors.get(name)  # module imported twice (tests, reload)
    return existing if isinstance(existing, kind) else kind(name, doc, **kw)


RETRIEVAL_SECONDS = _metric(
    Histogram,
    "voice_agent_retrieval_seconds",
    "Knowledge retrieval latency (query embedding + search + fusion), by mode",
    labelnames=["mode"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
INGEST_SECONDS = _metric(
    Histogram,
    "voice_agent_knowledge_ingest_seconds",
    "Document event submitted to settled (searchable, deleted, failed, skipped), by outcome",
    labelnames=["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)
INGEST_QUEUE = _metric(Gauge, "voice_agent_knowledge_ingest_queue", "Document events waiting for a worker")
