"""Proactive prompts: deliver ``voice_proactive`` messages into live calls exactly once (see README.md)."""

from server.proactive.consumer import ProactivePromptConsumer
from server.proactive.directory import LiveCall, SessionDirectory
from server.proactive.ledger import DeliveryEvent, DeliveryLedger, DeliveryRecord

__all__ = [
    "DeliveryEvent",
    "DeliveryLedger",
    "DeliveryRecord",
    "LiveCall",
    "ProactivePromptConsumer",
    "SessionDirectory",
]
