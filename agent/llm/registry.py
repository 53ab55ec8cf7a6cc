"""Picks the LLM backend named in the config; one shared instance per distinct config."""

from __future__ import annotations

import threading

from agent.config import LLMConfig
from agent.llm.base import LLM

_shared: dict[str, LLM] = {}
_lock = threading.Lock()


def create_llm(config: LLMConfig) -> LLM:
    """The process-wide LLM for ``config`` (a llama.cpp model is loaded once, not once per call)."""
    key = config.model_dump_json()
    with _lock:
        if key not in _shared:
            _shared[key] = _build(config)
        return _shared[key]


def _build(config: LLMConfig) -> LLM:
    # Backend modules import their heavy dependencies themselves, so an unused backend costs nothing.
    if config.backend == "ollama":
        from agent.llm.ollama import OllamaLLM

        return OllamaLLM(config)
    from agent.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(config)
