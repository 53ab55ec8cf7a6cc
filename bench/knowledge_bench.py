"""Knowledge benchmark: embedding throughput, ingestion throughput, upload->searchable, retrieval latency.

    .venv/bin/python bench/knowledge_bench.py [--store embedded|postgres] [--dsn DSN] [--docs 40]

Uses the real MiniLM embedder and the public-domain passages in tests/knowledge/data (repeated with
unique markers to reach --docs documents). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge.config import KnowledgeConfig
from knowledge.events import DocumentEvent
from knowledge.knowledge_base import KnowledgeBase

DATA = Path(__file__).resolve().parents[1] / "tests" / "knowledge" / "data"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run(args: argparse.Namespace, tmp: str) -> dict[str, object]:
    cfg = KnowledgeConfig(store=args.store, postgres_dsn=args.dsn, embedded_path=f"{tmp}/kb.sqlite3")
    texts = [p.read_text() for p in sorted(DATA.glob("*.md"))]
    questions = [q["q"] for q in json.loads((DATA / "questions.json").read_text())]
    out: dict[str, object] = {"store": args.store}
    async with KnowledgeBase(cfg) as kb:
        sentences = [s for t in texts for s in t.split("\n\n")][:128]
        started = time.perf_counter()
        await kb.embedder.embed(sentences)
        out["embed_texts_per_s"] = round(len(sentences) / (time.perf_counter() - started), 1)

        started = time.perf_counter()
        for i in range(args.docs):
            body = texts[i % len(texts)] + f"\n\nBenchmark marker bm{i}x."
            await kb.ingestor.submit(
                DocumentEvent(op="upsert", doc_id=f"bench-{i}", content=body, content_type="text/markdown")
            )
        # Retrieval for a live call while ingestion runs (query lane vs bulk lane).
        busy = []
        for q in questions:
            if kb.ingestor._queue.empty():
                break
            t0 = time.perf_counter()
            await kb.retriever.retrieve(q, k=5)
            busy.append(time.perf_counter() - t0)
        await kb.ingestor.wait_idle()
        elapsed = time.perf_counter() - started
        if busy:
            out["retrieve_hybrid_during_ingest_ms"] = {
                "p50": round(1000 * pct(busy, 0.5), 1),
                "p95": round(1000 * pct(busy, 0.95), 1),
                "n": len(busy),
            }
        docs = await kb.store.list_documents(limit=args.docs)
        chunks = sum(d.chunk_count for d in docs)
        out.update(
            ingest_docs_per_s=round(args.docs / elapsed, 2),
            ingest_chunks_per_s=round(chunks / elapsed, 1),
            chunks=chunks,
        )

        fresh = []
        for i in range(5):
            t0 = time.perf_counter()
            await kb.ingestor.submit(
                DocumentEvent(op="upsert", doc_id=f"fresh-{i}", content=f"Fresh token fr{i}zz.")
            )
            while not await kb.retriever.retrieve(f"fr{i}zz", k=1, mode="fulltext"):
                await asyncio.sleep(0.01)
            fresh.append(time.perf_counter() - t0)
        out["submit_to_searchable_s"] = {
            "p50": round(statistics.median(fresh), 3),
            "max": round(max(fresh), 3),
        }

        for mode in ("vector", "fulltext", "hybrid"):
            lat = []
            for q in questions * 2:
                t0 = time.perf_counter()
                await kb.retriever.retrieve(q, k=5, mode=mode)  # type: ignore[arg-type]
                lat.append(time.perf_counter() - t0)
            out[f"retrieve_{mode}_ms"] = {
                "p50": round(1000 * pct(lat, 0.5), 1),
                "p95": round(1000 * pct(lat, 0.95), 1),
            }
    return out


async def run_in_tmp(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="knowledge-bench-") as tmp:
        return await run(args, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["embedded", "postgres"], default="embedded")
    parser.add_argument("--dsn", default=None, help="PostgreSQL DSN (scripts/postgres.sh start prints one)")
    parser.add_argument("--docs", type=int, default=40)
    print(json.dumps(asyncio.run(run_in_tmp(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
