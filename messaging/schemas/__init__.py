"""Versioned JSON bodies of the bus topics, one module per topic."""

from messaging.schemas.base import BusModel
from messaging.schemas.knowledge_changes import KnowledgeChange
from messaging.schemas.voice_conversation import ConversationEvent
from messaging.schemas.voice_proactive import ProactivePrompt

__all__ = ["BusModel", "ConversationEvent", "KnowledgeChange", "ProactivePrompt"]
