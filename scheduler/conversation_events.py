"""Feeds ``voice_conversation`` bus messages (``messaging.schemas.ConversationEvent``) into the log."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from messaging.schemas import ConversationEvent
from scheduler.conversations import ConversationLog

log = logging.getLogger(__name__)


def record_conversation_event(log_store: ConversationLog, event: Any) -> None:
    """Record one ``ConversationEvent``: ``final_turn`` adds a turn, ``call_ended`` ends the conversation.

    Events without a user id are skipped: an anonymous caller cannot be contacted again.
    """
    if not event.user_id:
        log.debug("conversation event without user id skipped: call_id=%s", event.call_id)
        return
    at = datetime.fromtimestamp(event.ts, UTC)
    tenant = getattr(event, "tenant", "default")
    if event.event == "call_ended":
        log_store.record_end(event.call_id, event.user_id, at, tenant)
    elif event.event == "final_turn":
        role, text = event.role or "user", event.text or ""
        log_store.record_turn(event.call_id, event.user_id, role, text, at, tenant)
    else:  # call_started: registers the conversation; turns follow
        log_store.record_turn(event.call_id, event.user_id, "user", "", at, tenant)


def subscribe_conversation_log(bus: Any, topic: str, group: str, log_store: ConversationLog) -> Any:
    """Subscribe ``log_store`` to ``topic`` (``voice_conversation``); returns the bus Subscription."""
    async def handle(message: Any) -> None:
        # parse() raises PoisonMessage for bodies that can never be used: the bus dead-letters them.
        event = ConversationEvent.parse(message.body)
        await asyncio.to_thread(record_conversation_event, log_store, event)  # SQL: off the event loop

    return bus.subscribe(topic, group, handle)
