"""Control events a ``SipCall`` emits to the call core, in order, through ``SipCall.events()``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class HangupReason(str, Enum):
    LOCAL = "local"  # we hung up (SipCall.hangup)
    REMOTE = "remote"  # the peer sent BYE
    TRANSFERRED = "transferred"  # a REFER succeeded and the call was released
    MEDIA_TIMEOUT = "media_timeout"  # no RTP for sip.media_timeout_s while not on hold
    ACK_TIMEOUT = "ack_timeout"  # our 200 OK was never acknowledged
    SHUTDOWN = "shutdown"  # the user agent stopped


@dataclass(frozen=True)
class DtmfReceived:
    digit: str  # 0-9, *, #, A-D
    duration_ms: int
    at: float  # monotonic time the end of the digit arrived


@dataclass(frozen=True)
class HoldChanged:
    on_hold: bool  # the peer stopped (True) or resumed (False) sending audio to us


@dataclass(frozen=True)
class NoSpeech:
    """The caller's audio has held no voice for ``silent_for_s`` (sip.no_speech_hangup_s); sent once per
    silence. The call core decides what to do (say goodbye politely, then ``hangup()``)."""

    silent_for_s: float


@dataclass(frozen=True)
class TransferProgress:
    target: str
    status: int  # from the peer's NOTIFY (message/sipfrag): 100, 180, 200, 486...
    reason: str


@dataclass(frozen=True)
class CallEnded:
    reason: HangupReason
    detail: str = ""  # e.g. the BYE's Reason header

    @property
    def by_remote(self) -> bool:
        return self.reason is HangupReason.REMOTE


SipCallEvent = DtmfReceived | HoldChanged | NoSpeech | TransferProgress | CallEnded
