"""Topic ``voice_conversation``: a call's lifecycle and final turns (nodes produce, the scheduler's intent
analysis consumes)."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from messaging.schemas.base import BusModel


class ConversationEvent(BusModel):
    """A call's lifecycle and its final user/agent turns (topic ``voice_conversation``), read by the
    intent-analysis jobs of the scheduler."""

    event: Literal["call_started", "call_ended", "final_turn"]
    call_id: str = Field(min_length=1)
    user_id: str | None = None
    tenant: str = Field(default="default", min_length=1, max_length=128)  # user ids are unique per tenant
    node_id: str | None = None
    text: str | None = None
    role: Literal["user", "agent"] | None = None
    ts: float = Field(default_factory=time.time)
