"""Proactive prompts: deliver ``voice_proactive`` messages into live calls exactly once (see README.md)."""

from server.proactive.consumer import ProactivePromptConsumer
from server.proactive.directory import PromptTarget, SessionDirectory
from server.proactive.ledger import DeliveryEvent, DeliveryLedger, DeliveryRecord

__all__ = [
    "DeliveryEvent",
    "DeliveryLedger",
    "DeliveryRecord",
    "ProactivePromptConsumer",
    "PromptTarget",
    "SessionDirectory",
]
