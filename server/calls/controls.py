"""Control events a transport hands to ``CallSession.control``: what the caller's side does besides talking.

Today there is one: ``Hangup`` (the page's hang-up button, a gateway's ``stop``, a SIP BYE). The SIP bridge
adds its own here (DTMF digits, hold and resume) as further dataclasses in ``ControlEvent`` and a branch in
``CallSession.control``; a transport never reaches into the session's collaborators directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hangup:
    """The caller's side ended the call; ``reason`` is recorded as the call's end reason."""

    reason: str = "hangup"


ControlEvent = Hangup
