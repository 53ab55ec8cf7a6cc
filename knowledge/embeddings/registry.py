"""Pick an embedding backend by name (``knowledge.embedding.backend``); heavy imports stay in backends."""

from __future__ import annotations

import threading

from knowledge.config import EmbeddingConfig
from knowledge.embeddings.base import Embedder
from knowledge.errors import EmbeddingError

_shared: dict[tuple[str, str | None, str], Embedder] = {}
_lock = threading.Lock()


def create_embedder(config: EmbeddingConfig) -> Embedder:
    """Return the process-wide embedder for ``config`` (one model load per backend and path)."""
    key = (config.backend, config.model_path, config.ollama_model)
    with _lock:
        if key not in _shared:
            _shared[key] = _build(config)
        return _shared[key]


def _build(config: EmbeddingConfig) -> Embedder:
    if config.backend == "minilm":
        from knowledge.embeddings.minilm import MiniLMEmbedder

        return MiniLMEmbedder(
            config.model_path, batch_size=config.batch_size, blas_threads=config.blas_threads
        )
    if config.backend == "sentence-transformers":
        from knowledge.embeddings.minilm import default_model_dir
        from knowledge.embeddings.sentence_transformers import SentenceTransformersEmbedder

        return SentenceTransformersEmbedder(config.model_path or default_model_dir(), config.batch_size)
    if config.backend == "ollama":
        from knowledge.embeddings.ollama import OllamaEmbedder

        return OllamaEmbedder(config.ollama_model, host=config.ollama_host, batch_size=config.batch_size)
    raise EmbeddingError(
        f"unknown embedding backend {config.backend!r}: use minilm, sentence-transformers or ollama"
    )
