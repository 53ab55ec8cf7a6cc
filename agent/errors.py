"""Exceptions of the agent package."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error raised by the agent package."""


class LLMError(AgentError):
    """An LLM backend failed to produce a reply."""


class LLMUnavailableError(LLMError):
    """The LLM backend cannot be reached (server down, wrong host/port) or could not be loaded."""


class ModelNotFoundError(LLMError):
    """The configured model does not exist in the backend (not pulled / created, or no GGUF at the path)."""


class LLMTimeoutError(LLMError):
    """The LLM backend did not answer in time (no first token within the configured limit)."""


class ToolError(AgentError):
    """A tool call failed (unknown tool, invalid arguments, or the collaborator behind it raised)."""


class IntentError(AgentError):
    """The LLM's intent analysis output was not valid JSON for the ``IntentResult`` schema."""


class MemoryStoreError(AgentError):
    """The long-term memory database could not be read or written."""
