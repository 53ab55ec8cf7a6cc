"""Optional embedding backend on ``sentence-transformers`` (needs torch; install the extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.embeddings.base import l2_normalize, run_in_model_executor
from knowledge.errors import EmbeddingError


class SentenceTransformersEmbedder:
    name = "sentence-transformers"

    def __init__(self, model_path: str | Path, batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                "embedding backend 'sentence-transformers' needs `pip install voice-agent[sentence-transformers]` "
                "(and torch); the default backend 'minilm' needs neither"
            ) from exc
        self.model: Any = SentenceTransformer(str(model_path), device="cpu")
        self.dim = int(self.model.get_sentence_embedding_dimension())
        self.batch_size = batch_size

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True)
        return l2_normalize(np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim))

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return await run_in_model_executor(self.embed_sync, list(texts))
