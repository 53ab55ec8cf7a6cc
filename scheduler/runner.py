"""Wiring of the scheduler from ``Settings`` and a bus; composed by ``server.node`` (in ``serve`` on the
embedded profile, or as the ``voice-agent scheduler`` process)."""

from __future__ import annotations

import logging
from typing import Any

from scheduler.conversation_events import subscribe_conversation_log
from scheduler.deliveries import PromptDeliveries
from scheduler.intent_followup import LLMIntentAnalyzer
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService

log = logging.getLogger(__name__)


def build_scheduler_service(
    settings: Any, bus: Any, deliveries: PromptDeliveries, llm: Any | None = None
) -> SchedulerService:
    """A SchedulerService publishing on ``bus``, analysing intents with ``llm`` (default: from settings)."""
    if llm is None:
        from agent.llm.registry import create_llm

        llm = create_llm(settings.agent.llm)
    return SchedulerService(
        settings.scheduler,
        BusPromptPublisher(bus, settings.bus.topic_proactive),
        deliveries,
        intent_analyzer=LLMIntentAnalyzer(llm, settings.agent),
    )


async def start_embedded_scheduler(
    settings: Any, bus: Any, deliveries: PromptDeliveries, llm: Any | None = None
) -> SchedulerService:
    """For ``serve`` on the embedded profile: subscribe to conversation events and start the jobs.

    The caller starts the bus (before or after) and calls ``await service.stop()`` on shutdown.
    """
    service = build_scheduler_service(settings, bus, deliveries, llm)
    subscribe_conversation_log(
        bus, settings.bus.topic_conversation, settings.scheduler.consumer_group, service.conversation_log
    )
    await service.start()
    return service
