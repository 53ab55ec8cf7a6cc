"""Wiring of the scheduler from ``Settings``: as its own process (``voice-agent scheduler``) or in ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from scheduler.campaigns import DeliveryStatusSource
from scheduler.conversation_events import subscribe_conversation_log
from scheduler.intent_followup import LLMIntentAnalyzer
from scheduler.ledger_status import LedgerStatusSource
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService

log = logging.getLogger(__name__)


def build_scheduler_service(
    settings: Any, bus: Any, llm: Any | None = None, ledger: DeliveryStatusSource | None = None
) -> SchedulerService:
    """A SchedulerService publishing on ``bus``, analysing intents with ``llm`` (default: from settings)."""
    if llm is None:
        from agent.llm.registry import create_llm

        llm = create_llm(settings.agent.llm)
    return SchedulerService(
        settings.scheduler,
        BusPromptPublisher(bus, settings.bus.topic_proactive),
        intent_analyzer=LLMIntentAnalyzer(llm, settings.agent),
        ledger=ledger,
    )


async def start_embedded_scheduler(
    settings: Any, bus: Any, llm: Any | None = None, ledger: DeliveryStatusSource | None = None
) -> SchedulerService:
    """For ``serve`` on the embedded profile: subscribe to conversation events and start the jobs.

    The caller starts the bus (before or after) and calls ``await service.stop()`` on shutdown.
    """
    service = build_scheduler_service(settings, bus, llm, ledger)
    subscribe_conversation_log(
        bus, settings.bus.topic_conversation, settings.scheduler.consumer_group, service.conversation_log
    )
    await service.start()
    return service


async def run_scheduler(settings: Any, stop: asyncio.Event | None = None) -> None:
    """``voice-agent scheduler``: run until SIGINT/SIGTERM (or ``stop`` is set)."""
    from server.bus.registry import create_bus

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bus = create_bus(settings.bus)
    ledger = open_delivery_ledger(settings)
    service = await start_embedded_scheduler(
        settings, bus, ledger=LedgerStatusSource(ledger) if ledger else None
    )
    await bus.start()
    log.info("scheduler running; stop with Ctrl-C")
    try:
        await stop.wait()
    finally:
        await service.stop()
        await bus.close()
        if ledger is not None:
            ledger.close()


def open_delivery_ledger(settings: Any) -> Any | None:
    """The RTC servers' delivery ledger (a shared SQLite file or PostgreSQL DSN), for campaign delivery
    status; None if absent."""
    try:
        from server.proactive.ledger import open_delivery_ledger as open_ledger
    except ImportError as exc:
        log.warning("delivery ledger unavailable, campaign status stops at 'pending': %s", exc)
        return None
    return open_ledger(settings.bus.proactive_ledger)
