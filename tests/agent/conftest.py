"""Shared fixtures of the agent tests: real LLM backends, fakes named as fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
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


# --- a real knowledge base for the grounded-answer tests ----------------------------------------------------

SHOP_FAQ = Path(__file__).resolve().parents[2] / "bench" / "data" / "answers" / "shop" / "faq.md"
# A second document in the same knowledge base with other weekend hours, so a follow-up answered from the
# wrong document shows.
CAFE_PAGE = """# Harbor Street Café

The café next to the repair shop serves coffee, sandwiches and cakes.

## Café opening hours

- Saturday: 8 am to 6 pm.
- Sunday: 9 am to 3 pm.
"""


@pytest.fixture(scope="session")
def minilm() -> Any:
    from knowledge.config import KnowledgeConfig
    from knowledge.embeddings.registry import create_embedder

    return create_embedder(KnowledgeConfig().embedding)


@pytest.fixture
async def shop_kb(tmp_path: Path, minilm: Any) -> AsyncIterator[Any]:
    """The phone-repair shop FAQ (Markdown) and a café page, ingested through a watched folder."""
    from knowledge.config import KnowledgeConfig
    from knowledge.knowledge_base import KnowledgeBase

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "faq.md").write_bytes(SHOP_FAQ.read_bytes())
    (inbox / "cafe.md").write_text(CAFE_PAGE)
    config = KnowledgeConfig(embedded_path=str(tmp_path / "kb.sqlite3"), watch_dir=str(inbox))
    async with KnowledgeBase(config, embedder=minilm) as kb:
        await kb.ingestor.wait_idle()
        for name in ("faq.md", "cafe.md"):
            record = await kb.ingestor.status(f"file:{name}")
            assert record is not None and record.status == "ready", record
        yield kb
