"""The numpy MiniLM embedder: real weights, real sentences."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.config import EmbeddingConfig
from knowledge.embeddings.base import Embedder
from knowledge.embeddings.minilm import _erf, _gelu
from knowledge.embeddings.registry import create_embedder
from knowledge.errors import EmbeddingError


async def test_similar_sentences_score_higher_than_unrelated(embedder: Embedder) -> None:
    texts = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "How do I reset my password?",
        "Steps to change the account password",
        "The girl is carrying a baby.",
    ]
    v = await embedder.embed(texts)
    assert v.shape == (5, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    # Reference all-MiniLM-L6-v2 (sentence-transformers) gives 0.755 for the first pair.
    assert sim[0, 1] == pytest.approx(0.755, abs=0.01)
    assert sim[2, 3] > 0.6
    for a, b in [(0, 2), (0, 3), (1, 4), (2, 4)]:
        assert sim[a, b] < 0.2 < sim[0, 1]


async def test_batching_and_padding_do_not_change_vectors(embedder: Embedder) -> None:
    texts = ["short", "a much longer sentence that needs padding of the short one in its batch"]
    together = await embedder.embed(texts)
    alone = np.vstack([await embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert (await embedder.embed([])).shape == (0, 384)


def test_erf_approximation() -> None:
    import math

    xs = np.linspace(-4, 4, 101).astype(np.float32)
    np.testing.assert_allclose(_erf(xs), [math.erf(x) for x in xs], atol=1e-6)
    exact = [0.5 * x * (1 + math.erf(x / math.sqrt(2))) for x in xs]
    np.testing.assert_allclose(_gelu(xs), exact, atol=1e-6)
    assert _gelu(xs).dtype == np.float32


def test_registry_shares_one_instance(embedder: Embedder) -> None:
    assert create_embedder(EmbeddingConfig()) is embedder


def test_missing_optional_backend_gives_clear_error() -> None:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(EmbeddingError, match="sentence-transformers"):
            create_embedder(EmbeddingConfig(backend="sentence-transformers"))
    else:
        pytest.skip("sentence-transformers is installed")


def test_bad_model_dir_gives_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmbeddingError, match="model.safetensors|config.json"):
        create_embedder(EmbeddingConfig(model_path=str(tmp_path)))


def test_chunks_counted_in_wordpieces_fit_the_model_window(embedder: Embedder) -> None:
    from knowledge.chunking import chunk_document
    from knowledge.parsers import ParsedDocument, Section

    rare = " ".join(f"Zyxqwv{i}ophthalmological pseudohypoparathyroidism." for i in range(200))
    counter = embedder.count_tokens  # type: ignore[attr-defined]
    chunks = chunk_document(ParsedDocument(None, [Section(None, [rare])]), 200, 30, counter)
    assert len(chunks) > 5
    assert all(counter(c.text) <= 200 for c in chunks)


async def test_bulk_batches_match_single_texts(embedder: Embedder) -> None:
    texts = [f"Sentence {i} about {'long ' * i}topics." for i in range(7)]
    bulk = await embedder.embed(texts)  # > 4 texts: bulk lane, sorted into length batches
    single = np.vstack([await embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(bulk, single, atol=1e-5)


async def test_query_embedding_does_not_wait_behind_ingestion(embedder: Embedder) -> None:
    """Regression: with BLAS toggled per call, queries during ingestion took 0.3-1.5 s instead of ~30 ms."""
    import asyncio
    import statistics
    import time

    bulk = asyncio.create_task(embedder.embed(["a fairly long passage of text " * 20] * 96))
    await asyncio.sleep(0.05)
    latencies = []
    while not bulk.done() and len(latencies) < 8:
        started = time.perf_counter()
        await embedder.embed(["when does the office open?"])
        latencies.append(time.perf_counter() - started)
    assert not bulk.done(), "bulk embedding finished before the queries: make it larger"
    await bulk
    median = statistics.median(latencies)
    print(f"\nquery embedding during ingestion: median {median * 1000:.0f} ms of {len(latencies)}")
    assert median < 0.3  # alone ~15 ms; generous for a loaded shared machine
