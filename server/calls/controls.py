"""Control events a transport hands to ``CallSession.control``: what the caller's side does besides talking.

``Hangup`` (the page's hang-up button, a gateway's ``stop``, a SIP BYE), ``Dtmf`` (a key pressed on the
caller's phone: RFC 4733 on SIP) and ``Hold`` (the caller's side put the call on hold, or took it off). A
transport never reaches into the session's collaborators directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

DTMF_KEYS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class Hangup:
    """The caller's side ended the call; ``reason`` is recorded as the call's end reason."""

    reason: str = "hangup"


@dataclass(frozen=True)
class Dtmf:
    """One key pressed by the caller (``0-9``, ``*``, ``#``, ``A-D``); ``at`` is monotonic time."""

    digit: str
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.digit not in DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {self.digit!r} (0-9, *, #, A-D)")


@dataclass(frozen=True)
class Hold:
    """The caller's side put the call on hold (True) or resumed it (False): while held, the agent says
    nothing and the caller's audio (music on hold) is not listened to."""

    on_hold: bool


ControlEvent = Hangup | Dtmf | Hold
