"""Shared fixtures of the agent tests: real LLM backends, fakes named as fakes."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config import AgentConfig, LLMConfig, OllamaConfig
from tests.agent.fakes import FakeChunk, FakeRetriever


@pytest.fixture(scope="session")
def llamacpp_llm() -> Any:
    import llama_cpp  # noqa: F401  - installed by scripts/setup.sh; a missing one must fail, not skip

    from agent.llm.llamacpp import LlamaCppLLM

    llm = LlamaCppLLM(LLMConfig(backend="llamacpp", max_tokens=60))
    llm._llama.create_completion("Hello", max_tokens=2)  # warm-up: first evaluation allocates buffers
    return llm


@pytest.fixture
def ollama_config(ollama_server: str) -> LLMConfig:
    return LLMConfig(backend="ollama", ollama=OllamaConfig(host=ollama_server), max_tokens=60)


@pytest.fixture
def ollama_llm(ollama_config: LLMConfig) -> Any:
    from agent.llm.ollama import OllamaLLM

    return OllamaLLM(ollama_config)


@pytest.fixture
def agent_config(tmp_path: Any) -> AgentConfig:
    # Generous first-token limit: the test machine's 2 cores are shared; the apology path has its own tests.
    return AgentConfig(memory_path=str(tmp_path / "memory.sqlite3"), first_token_timeout_s=10)


@pytest.fixture
def fake_retriever() -> FakeRetriever:
    return FakeRetriever(
        [
            FakeChunk("The Basic plan costs 12 dollars per month.", 0.9, "pricing.md#0", "pricing.md"),
            FakeChunk("Support is open Monday to Friday, 9 to 5.", 0.8, "hours.md#0", "hours.md"),
        ]
    )


# The real knowledge base of the grounded-answer tests (``minilm``, ``shop_kb``) is in tests/fixtures/knowledge.py.
