"""Prometheus metrics of calls and turns (``voice_agent_<what>_<unit>``), served at ``/metrics``
(``server.http.app``).

Per-stage latency histograms (``voice_agent_<stage>_seconds``, ``voice_agent_voice_to_voice_seconds``) live
in ``speech.timing`` and are fed by the call session; this module counts calls, turns and interruptions.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CALLS_STARTED = Counter("voice_agent_calls_started_total", "Calls whose offer was answered")
CALLS_ENDED = Counter("voice_agent_calls_ended_total", "Calls ended, by reason", ["reason"])
CALLS_ACTIVE = Gauge("voice_agent_calls_active", "Calls in progress on this node")
SIGNALING_ERRORS = Counter("voice_agent_signaling_errors_total", "Rejected offers, by reason", ["reason"])
TURNS = Counter("voice_agent_turns_total", "Agent replies started")
INTERRUPTIONS = Counter("voice_agent_interruptions_total", "Agent speech cut off by the caller (barge-in)")
PROACTIVE_SPOKEN = Counter("voice_agent_proactive_spoken_total", "Proactive prompts, by outcome", ["outcome"])
