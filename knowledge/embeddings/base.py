"""The ``Embedder`` protocol every embedding backend implements, and the shared executor."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

T = TypeVar("T")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension.

    A backend may also offer ``count_tokens(text) -> int`` in its own tokens; the chunker then sizes chunks
    with it so nothing is cut off by the model's input limit.
    """

    name: str
    dim: int

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)``; rows have unit norm."""
        ...


Lane = Literal["bulk", "query"]
QUERY_TEXTS = 4  # calls embedding at most this many texts are queries and use the query lane


@functools.cache
def model_executor(lane: Lane = "bulk") -> ThreadPoolExecutor:
    """One single-thread pool per lane, shared by all embedders: a query embedding for a live call never
    waits behind an ingestion batch (``bulk``), and the two lanes together use at most two cores."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"knowledge-embed-{lane}")


async def run_in_model_executor(fn: Callable[..., T], *args: object, lane: Lane = "bulk") -> T:
    """Run ``fn(*args)`` in the shared bounded pool of ``lane``, off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(model_executor(lane), fn, *args)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out
