"""Latency summary for the dashboard from this process's Prometheus histograms.

Reads every ``voice_agent_<stage>_seconds`` histogram in the registry and reports, per stage, the count,
mean and bucket-interpolated p50/p95, so the dashboard needs no Prometheus server.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry


class PrometheusLatency:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry

    def latency_summary(self) -> dict[str, Any]:
        stages = []
        for metric in self._registry.collect():
            if metric.type != "histogram" or not metric.name.startswith("voice_agent_"):
                continue
            if not metric.name.endswith("_seconds"):
                continue
            buckets: list[tuple[float, float]] = []
            count = total = 0.0
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    buckets.append((float(sample.labels["le"]), sample.value))
                elif sample.name.endswith("_count"):
                    count += sample.value
                elif sample.name.endswith("_sum"):
                    total += sample.value
            stage = metric.name[len("voice_agent_") : -len("_seconds")]
            stages.append(
                {
                    "stage": stage,
                    "count": int(count),
                    "mean_s": total / count if count else None,
                    "p50_s": _quantile(buckets, 0.5),
                    "p95_s": _quantile(buckets, 0.95),
                }
            )
        return {"stages": sorted(stages, key=lambda s: s["stage"])}


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Quantile from cumulative buckets (labels summed per ``le``), interpolated linearly inside a bucket."""
    merged: dict[float, float] = {}
    for le, value in buckets:
        merged[le] = merged.get(le, 0.0) + value
    ordered = sorted(merged.items())
    if not ordered or ordered[-1][1] == 0:
        return None
    target = q * ordered[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, cumulative in ordered:
        if cumulative >= target:
            if math.isinf(le):
                return prev_le
            span = cumulative - prev_count
            frac = (target - prev_count) / span if span else 1.0
            return prev_le + (le - prev_le) * frac
        prev_le, prev_count = le, cumulative
    return prev_le
