"""Errors of the SIP bridge; each names what failed and what to do about it."""

from __future__ import annotations

from enum import Enum


class SipError(Exception):
    """Base of every error raised by ``server.transports.sip``."""


class SdpError(SipError):
    """An SDP body cannot be used: unparseable, no audio, or no codec in common (answered with 488/400)."""

    def __init__(self, message: str, status: int = 488) -> None:
        super().__init__(message)
        self.status = status


class DialOutcome(str, Enum):
    """How an outbound call attempt ended when it was not answered; each maps to a retry policy."""

    BUSY = "busy"  # 486 / 600: try again later
    REJECTED = "rejected"  # 403, 603 and other final refusals: do not retry soon
    NO_ANSWER = "no_answer"  # rang until the ring timeout (we sent CANCEL), or 408/480
    UNREACHABLE = "unreachable"  # no response at all, 404, 5xx, or a network error
    FAILED = "failed"  # answered with an SDP we cannot use, or a local error


class DialError(SipError):
    """An outbound call was not answered; ``outcome`` says why, ``status`` is the SIP code (0: none)."""

    def __init__(self, target: str, outcome: DialOutcome, status: int = 0, reason: str = "") -> None:
        detail = f"{status} {reason}".strip() if status else reason or "no response"
        super().__init__(f"call to {target} not answered: {outcome.value} ({detail})")
        self.target = target
        self.outcome = outcome
        self.status = status
        self.reason = reason


class TransferError(SipError):
    """A REFER was refused, or the transfer target never answered (``status`` from the NOTIFY or response)."""

    def __init__(self, target: str, status: int, reason: str) -> None:
        super().__init__(f"transfer to {target} failed: {status} {reason}".strip())
        self.target = target
        self.status = status
        self.reason = reason


class CallEndedError(SipError):
    """An operation needs a live call, but the call already ended."""
