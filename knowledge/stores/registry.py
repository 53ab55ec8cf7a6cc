"""Pick the knowledge store by name (``knowledge.store``)."""

from __future__ import annotations

from knowledge.config import KnowledgeConfig
from knowledge.errors import StoreError
from knowledge.stores.base import KnowledgeStore


def create_store(config: KnowledgeConfig, dim: int = 384) -> KnowledgeStore:
    """A new, not yet started store; ``dim`` is the embedding dimension (used by the PostgreSQL schema)."""
    if config.store == "embedded":
        from knowledge.stores.embedded import EmbeddedStore

        return EmbeddedStore(config.embedded_path)
    if config.store == "postgres":
        if not config.postgres_dsn:
            raise StoreError("knowledge.store is 'postgres' but knowledge.postgres_dsn is not set")
        from knowledge.stores.postgres import PostgresStore

        return PostgresStore(config.postgres_dsn, dim=dim)
    raise StoreError(f"unknown knowledge store {config.store!r}: use embedded or postgres")
