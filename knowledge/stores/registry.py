"""Pick the knowledge store by name (``knowledge.store``)."""

from __future__ import annotations

from knowledge.config import KnowledgeConfig
from knowledge.errors import StoreError
from knowledge.stores.base import KnowledgeStore


def create_store(config: KnowledgeConfig, dim: int = 384) -> KnowledgeStore:
    """A new, not yet started store; ``dim`` is the embedding dimension (used by the PostgreSQL schema)."""
    if config.store == "embedded":
        from knowledge.stores.embedded import EmbeddedStore

        return EmbeddedStore(config.embedded_path, busy_timeout_s=config.statement_timeout_s)
    if config.store == "postgres":
        if not config.postgres_dsn:
            raise StoreError("knowledge.store is 'postgres' but knowledge.postgres_dsn is not set")
        from knowledge.stores.postgres import PostgresStore

        return PostgresStore(
            config.postgres_dsn,
            dim=dim,
            connect_timeout_s=config.connect_timeout_s,
            statement_timeout_s=config.statement_timeout_s,
        )
    raise StoreError(f"unknown knowledge store {config.store!r}: use embedded or postgres")
