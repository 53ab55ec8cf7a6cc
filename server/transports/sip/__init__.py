"""SIP/RTP transport: an in-process SIP user agent (aiosipua) with G.711 RTP media (aiortp parts).

Public interface (everything else is internal and may change with the library underneath):
``SipUserAgent``, ``SipCall``, ``SipConfig`` (+ ``SipTrunkConfig``, ``InboundAuthConfig``), the events in
``events`` and the errors in ``errors``.
"""

from server.transports.sip.call import CallTimings, SipCall
from server.transports.sip.config import InboundAuthConfig, SipConfig, SipTrunkConfig
from server.transports.sip.errors import (
    CallEndedError,
    DialError,
    DialOutcome,
    SdpError,
    SipError,
    TransferError,
)
from server.transports.sip.events import (
    CallEnded,
    DtmfReceived,
    HangupReason,
    HoldChanged,
    NoSpeech,
    SipCallEvent,
    TransferProgress,
)
from server.transports.sip.identity import CallerIdentity
from server.transports.sip.user_agent import SipUserAgent

__all__ = [
    "CallEnded",
    "CallEndedError",
    "CallTimings",
    "CallerIdentity",
    "DialError",
    "DialOutcome",
    "DtmfReceived",
    "HangupReason",
    "HoldChanged",
    "InboundAuthConfig",
    "NoSpeech",
    "SdpError",
    "SipCall",
    "SipCallEvent",
    "SipConfig",
    "SipError",
    "SipTrunkConfig",
    "SipUserAgent",
    "TransferError",
    "TransferProgress",
]
