"""Optional embedding backend on an Ollama server (official ``ollama`` client, ``embed`` endpoint)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from knowledge.embeddings.base import l2_normalize
from knowledge.errors import EmbeddingError


class OllamaEmbedder:
    name = "ollama"

    def __init__(self, model: str, host: str | None = None, dim: int = 384, batch_size: int = 32) -> None:
        try:
            import ollama
        except ImportError as exc:
            raise EmbeddingError("embedding backend 'ollama' needs `pip install ollama`") from exc
        self.client: Any = ollama.AsyncClient(host=host)
        self.model = model
        self.dim = dim  # checked against the first answer
        self.batch_size = batch_size

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            try:
                resp = await self.client.embed(
                    model=self.model, input=list(texts[start : start + self.batch_size])
                )
            except Exception as exc:
                raise EmbeddingError(f"ollama embed with model {self.model!r} failed: {exc}") from exc
            rows.extend(resp["embeddings"])
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        if len(texts) and out.shape[1] != self.dim:
            self.dim = out.shape[1]
        return l2_normalize(out) if len(texts) else np.zeros((0, self.dim), np.float32)
