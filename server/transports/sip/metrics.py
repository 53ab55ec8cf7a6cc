"""Prometheus metrics of the SIP bridge (``voice_agent_sip_<what>_<unit>``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SIP_REFUSED = Counter(
    "voice_agent_sip_refused_total", "Requests refused before any call state, by reason", ["reason"]
)
SIP_DROPPED = Counter("voice_agent_sip_dropped_total", "SIP messages dropped unread, by reason", ["reason"])
SIP_CALLS = Counter("voice_agent_sip_calls_total", "SIP calls answered, by direction", ["direction"])
SIP_DIAL_OUTCOMES = Counter(
    "voice_agent_sip_dial_outcomes_total", "Outbound call attempts, by outcome", ["outcome"]
)
SIP_CALL_SETUP = Histogram(
    "voice_agent_sip_call_setup_seconds",
    "INVITE received -> 200 OK sent (inbound calls)",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
