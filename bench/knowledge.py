"""Knowledge benchmark: ingestion throughput, upload -> searchable, retrieval latency at 10,000 chunks on
both stores (embedded SQLite and PostgreSQL/pgvector), and recall@5 on the labelled set.

    .venv/bin/python bench/knowledge.py [--chunks 10000] [--unique 1000] [--stores embedded,postgres]

What runs, and what is real:
- embedder: the real MiniLM (numpy) everywhere;
- ingestion: documents built from docstring paragraphs of the packages installed in this venv (varied,
  real English prose) go through ``Ingestor`` (parse -> chunk -> embed -> atomic write); chunks/s counted
  from the stored ``chunk_count``s;
- upload -> searchable: ``POST /api/knowledge/documents`` on a real aiohttp server on loopback, then
  full-text search for the document's unique word until it is found; median of ``--uploads`` uploads;
- retrieval at ``--chunks`` chunks: embedding 10,000 chunks takes ~20 min on a shared 2-core box, so the
  corpus is ``--unique`` distinct passages embedded for real (vectors cached on disk under
  ``$VOICE_AGENT_CACHE/bench``, keyed by the text's SHA-256) and copied once per tenant
  (``--chunks / --unique`` tenants, identical text and vector per copy), written with
  ``store.replace_document`` (10 chunks per document). Queries (labelled questions + passage openings)
  are embedded live, uncached: the latency is the whole ``HybridRetriever.retrieve`` call;
- recall@5: the labelled passages of tests/knowledge/data in a fresh embedded store (as
  tests/knowledge/test_recall.py), and again inside each 10,000-chunk store (distractors).

PostgreSQL is started with scripts/postgres.sh in a temporary directory and stopped at the end.
Prints figures, then one JSON line.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Before the imports below: this file is bench/knowledge.py, so with bench/ first on sys.path (as when run
# as a script) `import knowledge` would find this file instead of the package.
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, FormData, web

from knowledge.config import KnowledgeConfig
from knowledge.embeddings.base import Embedder
from knowledge.embeddings.registry import create_embedder
from knowledge.events import DocumentEvent
from knowledge.knowledge_base import KnowledgeBase
from knowledge.sources.upload import upload_routes
from knowledge.stores.base import ChunkRecord, DocumentRecord

DATA = ROOT / "tests" / "knowledge" / "data"
CACHE = Path(os.environ.get("VOICE_AGENT_CACHE", Path.home() / ".cache" / "voice-agent")) / "bench"
CHUNKS_PER_DOC = 10


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores (load {load}), Python {platform.python_version()}"


# --- corpus ------------------------------------------------------------------------------------------
def docstring_paragraphs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (heading, paragraph) pairs: prose paragraphs of docstrings in this venv's packages."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    files = sorted(site.rglob("*.py"))
    random.Random(seed).shuffle(files)
    seen: dict[str, str] = {}
    for path in files:
        try:
            tree = ast.parse(path.read_text(errors="ignore"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for para in (ast.get_docstring(node) or "").split("\n\n"):
                text = " ".join(para.split())
                if (
                    150 < len(text) < 900
                    and text[0].isupper()
                    and not any(s in text for s in (">>>", "::", "--"))
                ):
                    seen.setdefault(text, f"{path.stem}.{node.name}")
        if len(seen) >= n:
            break
    if len(seen) < n:
        raise SystemExit(f"only {len(seen)} docstring paragraphs found in {site}; lower --unique")
    return [(heading, text) for text, heading in list(seen.items())[:n]]


class CachedEmbedder:
    """Wraps the real embedder: vectors of texts seen before come from memory or the on-disk cache.
    Used only to build the corpus; queries always go to the real embedder."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner, self.path = inner, path
        self.name, self.dim = inner.name, inner.dim
        self.count_tokens = getattr(inner, "count_tokens", None)
        self.cache: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as saved:
                self.cache = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))
        self.computed = 0
        self.compute_s = 0.0

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self.cache))
        if missing:
            started = time.perf_counter()
            vectors = await self.inner.embed(missing)
            self.compute_s += time.perf_counter() - started
            self.computed += len(missing)
            for text, vector in zip(missing, vectors, strict=True):
                self.cache[hashlib.sha256(text.encode()).hexdigest()] = vector
        return np.stack([self.cache[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.cache)
        np.savez(self.path, keys=np.array(keys), vectors=np.stack([self.cache[k] for k in keys]))


# --- PostgreSQL --------------------------------------------------------------------------------------
@asynccontextmanager
async def postgres_server() -> AsyncIterator[str]:
    base = tempfile.mkdtemp(prefix="knowledge-bench-pg-")
    os.chmod(base, 0o755)  # postgres runs as an unprivileged user when this runs as root
    data = os.path.join(base, "data")
    script = str(ROOT / "scripts" / "postgres.sh")
    try:
        started = await asyncio.to_thread(
            subprocess.run, [script, "start", data], capture_output=True, text=True, timeout=90, check=False
        )
        if started.returncode != 0:
            raise SystemExit(f"scripts/postgres.sh start failed:\n{started.stderr[-2000:]}")
        dsn = started.stdout.strip().splitlines()[-1]
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield dsn
    finally:
        await asyncio.to_thread(
            subprocess.run, [script, "stop", data], capture_output=True, text=True, timeout=60, check=False
        )
        shutil.rmtree(base, ignore_errors=True)


# --- phases ------------------------------------------------------------------------------------------
async def ingest_throughput(
    kb: KnowledgeBase, paragraphs: list[tuple[str, str]], docs: int
) -> dict[str, Any]:
    """Documents of 4 sections each through the Ingestor; texts unseen before, so every chunk is embedded."""
    per_doc = 4
    started = time.perf_counter()
    for d in range(docs):
        sections = paragraphs[d * per_doc : (d + 1) * per_doc]
        body = f"# Notes {d}\n\n" + "\n\n".join(f"## {h}\n\n{t}" for h, t in sections)
        await kb.ingestor.submit(
            DocumentEvent(op="upsert", doc_id=f"ingest-{d}", content=body, content_type="text/markdown")
        )
    await kb.ingestor.wait_idle()
    elapsed = time.perf_counter() - started
    records = [await kb.store.get_document(f"ingest-{d}") for d in range(docs)]
    assert all(r is not None and r.status == "ready" for r in records), records
    chunks = sum(r.chunk_count for r in records if r)
    return {
        "docs": docs,
        "chunks": chunks,
        "seconds": round(elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 2),
    }


async def bulk_load(
    kb: KnowledgeBase, pool: list[tuple[str, str]], vectors: np.ndarray, total: int
) -> dict[str, Any]:
    """``total`` chunks: the pool copied once per tenant, ``CHUNKS_PER_DOC`` chunks per document."""
    started = time.perf_counter()
    for first in range(0, total, CHUNKS_PER_DOC):
        tenant = f"tenant-{first // len(pool)}"
        chunks = [
            ChunkRecord(o, pool[i % len(pool)][1], pool[i % len(pool)][0], vectors[i % len(pool)])
            for o, i in enumerate(range(first, min(total, first + CHUNKS_PER_DOC)))
        ]
        record = DocumentRecord(f"corpus-{first // CHUNKS_PER_DOC}", tenant=tenant, source="bench", version=1)
        assert await kb.store.replace_document(record, chunks)
    elapsed = time.perf_counter() - started
    return {
        "chunks": total,
        "seconds": round(elapsed, 2),
        "store_write_chunks_per_s": round(total / elapsed, 1),
    }


async def ingest_labelled(kb: KnowledgeBase) -> None:
    for f in sorted(DATA.glob("*.md")):
        await kb.ingestor.submit(
            DocumentEvent(op="upsert", doc_id=f"labelled-{f.name}", path=str(f), source="test")
        )
    await kb.ingestor.wait_idle()


async def recall_at_5(kb: KnowledgeBase, questions: list[dict[str, str]]) -> dict[str, float]:
    out = {}
    for mode in ("vector", "fulltext", "hybrid"):
        hits = 0
        for q in questions:
            results = await kb.retriever.retrieve(q["q"], k=5, mode=mode)
            hits += any(r.heading == q["answer"] and r.doc_id.startswith("labelled-") for r in results)
        out[mode] = round(hits / len(questions), 3)
    return out


async def retrieval_latency(
    kb: KnowledgeBase, queries: list[str], tenant: str
) -> dict[str, dict[str, float]]:
    out = {}
    runs: list[tuple[str, str, dict[str, str] | None, list[str]]] = [
        ("hybrid", "hybrid", None, queries * 2),
        ("vector", "vector", None, queries),
        ("fulltext", "fulltext", None, queries),
        ("hybrid_tenant_filter", "hybrid", {"tenant": tenant}, queries),
    ]
    for name, mode, filters, qs in runs:
        latencies = []
        for q in qs:
            started = time.perf_counter()
            hits = await kb.retriever.retrieve(q, k=5, filters=filters, mode=mode)  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - started)
            assert hits or mode == "fulltext", f"no {mode} hits for {q!r}"
        out[name] = {
            "p50_ms": round(1000 * pct(latencies, 0.5), 1),
            "p95_ms": round(1000 * pct(latencies, 0.95), 1),
            "n": len(latencies),
        }
    return out


async def upload_to_searchable(
    kb: KnowledgeBase, uploads: int, paragraphs: list[tuple[str, str]]
) -> dict[str, Any]:
    """POST a small document over loopback HTTP; time until full-text search finds its unique word."""
    app = web.Application()
    app.add_routes(upload_routes(kb.ingestor, kb.config))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    times = []
    try:
        async with ClientSession() as http:
            for i, (heading, text) in enumerate(paragraphs[:uploads]):
                word = f"zq{time.time_ns()}x{i}"
                form = FormData()
                form.add_field(
                    "file", f"# {heading}\n\n{text} Marker {word}.".encode(), filename=f"up-{i}.md"
                )
                form.add_field("doc_id", f"upload-{i}")
                started = time.perf_counter()
                async with http.post(f"http://127.0.0.1:{port}/api/knowledge/documents", data=form) as resp:
                    assert resp.status == 202, await resp.text()
                while not await kb.retriever.retrieve(word, k=1, mode="fulltext"):
                    if time.perf_counter() - started > 60:
                        raise RuntimeError(f"upload {i} not searchable after 60 s")
                    await asyncio.sleep(0.005)
                times.append(time.perf_counter() - started)
    finally:
        await runner.cleanup()
    return {
        "n": len(times),
        "p50_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
    }


# --- driver ------------------------------------------------------------------------------------------
async def bench_store(
    kind: str, args: argparse.Namespace, corpus: dict[str, Any], tmp: str, dsn: str | None
) -> dict[str, Any]:
    real: Embedder = corpus["real"]
    cfg = KnowledgeConfig(store=kind, postgres_dsn=dsn, embedded_path=f"{tmp}/{kind}.sqlite3")  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    async with KnowledgeBase(cfg, embedder=corpus["cached"]) as kb:
        kb.retriever.embedder = real  # queries: live, never from the cache
        kb.ingestor.embedder = real  # ingestion: every chunk embedded for real
        t = corpus["ingest_texts"]
        offset = 0 if kind == "embedded" else 4 * args.ingest_docs  # fresh text per store
        out["ingest"] = await ingest_throughput(kb, t[offset:], args.ingest_docs)
        print(f"[{kind}] ingest: {out['ingest']}", flush=True)
        out["bulk_load"] = await bulk_load(kb, corpus["pool"], corpus["vectors"], args.chunks)
        print(f"[{kind}] bulk load of precomputed vectors: {out['bulk_load']}", flush=True)
        kb.ingestor.embedder = corpus["cached"]  # labelled set: embedded once, reused for the second store
        await ingest_labelled(kb)
        out["retrieval"] = await retrieval_latency(kb, corpus["queries"], "tenant-0")
        print(f"[{kind}] retrieval at {args.chunks}+ chunks: {out['retrieval']}", flush=True)
        out["recall5_with_distractors"] = await recall_at_5(kb, corpus["questions"])
        print(
            f"[{kind}] recall@5 among {args.chunks} distractors: {out['recall5_with_distractors']}",
            flush=True,
        )
        kb.ingestor.embedder = real
        out["upload"] = await upload_to_searchable(kb, args.uploads, t[-args.uploads :])
        print(f"[{kind}] upload -> searchable: {out['upload']}", flush=True)
    return out


async def clean_recall(tmp: str, embedder: Embedder, questions: list[dict[str, str]]) -> dict[str, float]:
    cfg = KnowledgeConfig(embedded_path=f"{tmp}/labelled.sqlite3")
    async with KnowledgeBase(cfg, embedder=embedder) as kb:
        await ingest_labelled(kb)
        return await recall_at_5(kb, questions)


async def build_corpus(args: argparse.Namespace) -> dict[str, Any]:
    real = create_embedder(KnowledgeConfig().embedding)
    await real.embed(["warm-up"])
    n_ingest = 8 * args.ingest_docs + args.uploads
    paragraphs = docstring_paragraphs(args.unique + n_ingest)
    pool, ingest_texts = paragraphs[: args.unique], paragraphs[args.unique :]
    cached = CachedEmbedder(real, CACHE / f"knowledge-{real.name}-vectors.npz")
    vectors = await cached.embed([f"{h}\n{t}" for h, t in pool])  # as the chunker embeds: heading + text
    if cached.computed:
        rate = cached.computed / cached.compute_s
        print(
            f"embedded {cached.computed} new passages in {cached.compute_s:.1f} s ({rate:.1f}/s; "
            f"{args.chunks} would take ~{args.chunks / rate / 60:.0f} min); cached in {cached.path}",
            flush=True,
        )
        cached.save()
    else:
        print(f"{len(pool)} passage vectors from the cache {cached.path}", flush=True)
    questions = json.loads((DATA / "questions.json").read_text())
    rng = random.Random(1)
    openings = [" ".join(t.split()[:8]) for _, t in rng.sample(pool, 26)]
    return {
        "real": real,
        "cached": cached,
        "pool": pool,
        "vectors": vectors,
        "ingest_texts": ingest_texts,
        "questions": questions,
        "queries": [q["q"] for q in questions] + openings,
        "embedded_fresh": cached.computed,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    print(f"machine: {machine()}", flush=True)
    corpus = await build_corpus(args)
    results: dict[str, Any] = {"machine": machine(), "chunks": args.chunks, "unique_passages": args.unique}
    with tempfile.TemporaryDirectory(prefix="knowledge-bench-") as tmp:
        results["recall5"] = await clean_recall(tmp, corpus["cached"], corpus["questions"])
        print(f"recall@5 on the labelled set ({len(corpus['questions'])} questions): {results['recall5']}")
        for kind in args.stores:
            if kind == "postgres":
                async with postgres_server() as dsn:
                    results[kind] = await bench_store(kind, args, corpus, tmp, dsn)
            else:
                results[kind] = await bench_store(kind, args, corpus, tmp, None)
    return results


def summary(r: dict[str, Any]) -> dict[str, Any]:
    e, p = r.get("embedded", {}), r.get("postgres", {})
    line: dict[str, Any] = {
        "machine": r["machine"],
        "ingest_chunks_per_s": e.get("ingest", {}).get("chunks_per_s"),
        "upload_to_searchable_s_p50": e.get("upload", {}).get("p50_s"),
        "retrieval_s_p50_embedded": _s(e, "p50_ms"),
        "retrieval_s_p95_embedded": _s(e, "p95_ms"),
        "retrieval_s_p50_postgres": _s(p, "p50_ms"),
        "retrieval_s_p95_postgres": _s(p, "p95_ms"),
        "recall5_vector": r["recall5"]["vector"],
        "recall5_fulltext": r["recall5"]["fulltext"],
        "recall5_hybrid": r["recall5"]["hybrid"],
        "ingest_chunks_per_s_postgres": p.get("ingest", {}).get("chunks_per_s"),
        "upload_to_searchable_s_p50_postgres": p.get("upload", {}).get("p50_s"),
        "chunks": r["chunks"],
        "unique_passages": r["unique_passages"],
    }
    return line


def _s(store: dict[str, Any], key: str) -> float | None:
    ms = store.get("retrieval", {}).get("hybrid", {}).get(key)
    return None if ms is None else round(ms / 1000, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--chunks", type=int, default=10_000, help="chunks in each store for retrieval latency"
    )
    parser.add_argument("--unique", type=int, default=1000, help="distinct passages embedded for the corpus")
    parser.add_argument("--ingest-docs", type=int, default=25, help="documents (4 sections each) to ingest")
    parser.add_argument("--uploads", type=int, default=10)
    parser.add_argument("--stores", type=lambda s: s.split(","), default=["embedded", "postgres"])
    args = parser.parse_args()
    if args.chunks % args.unique or args.unique % CHUNKS_PER_DOC:
        parser.error(f"--chunks must be a multiple of --unique, and --unique of {CHUNKS_PER_DOC}")
    results = asyncio.run(run(args))
    print(json.dumps(summary(results)))


if __name__ == "__main__":
    main()
