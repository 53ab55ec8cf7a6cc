"""WebRTC signaling: validate a caller's SDP offer and build the ICE configuration.

The offer arrives as JSON ``{"sdp": "...", "type": "offer", "user_id": "..."}``. Everything a client can get
wrong is turned into ``SignalingError`` with a message saying what to fix, which the HTTP layer returns as
400; aiortc only ever sees offers that parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCSessionDescription
from aiortc.sdp import SessionDescription

from server.config import IceServer

_MAX_SDP_BYTES = 64 * 1024
_USER_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")


class SignalingError(ValueError):
    """The offer cannot be used; ``reason`` is a short metric label, the message is for the client."""

    def __init__(self, message: str, reason: str = "bad_offer") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CallOffer:
    description: RTCSessionDescription
    user_id: str | None


def parse_offer(body: bytes) -> CallOffer:
    """Validate the POSTed JSON; raises ``SignalingError`` for anything malformed."""
    if len(body) > _MAX_SDP_BYTES:
        raise SignalingError(f"offer is {len(body)} bytes; the limit is {_MAX_SDP_BYTES}", "too_large")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SignalingError(
            f'body is not JSON ({exc}); send {{"sdp": ..., "type": "offer"}}', "bad_json"
        ) from None
    if not isinstance(data, dict):
        raise SignalingError("body must be a JSON object with 'sdp' and 'type'", "bad_json")
    sdp, kind = data.get("sdp"), data.get("type", "offer")
    if kind != "offer":
        raise SignalingError(f"'type' must be 'offer', got {kind!r}", "bad_type")
    if not isinstance(sdp, str) or not sdp.strip():
        raise SignalingError("'sdp' must be a non-empty string holding the SDP offer", "bad_sdp")
    user_id = data.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or not _USER_ID.match(user_id)):
        raise SignalingError("'user_id' must be 1-128 characters of letters, digits and _.:@+-", "bad_user")
    _check_sdp(sdp)
    return CallOffer(RTCSessionDescription(sdp=sdp, type="offer"), user_id or None)


def _check_sdp(sdp: str) -> None:
    if not sdp.lstrip().startswith("v=0"):
        raise SignalingError("'sdp' is not an SDP session description (it must start with 'v=0')", "bad_sdp")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError/KeyError/IndexError on broken lines
        raise SignalingError(f"'sdp' could not be parsed: {type(exc).__name__}: {exc}", "bad_sdp") from None
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise SignalingError(
            "the offer has no audio m-line; add a microphone track before creating it", "no_audio"
        )
    if not any(
        c.mimeType.lower() in ("audio/opus", "audio/pcmu", "audio/pcma") for m in audio for c in m.rtp.codecs
    ):
        raise SignalingError("the offer's audio supports none of Opus, PCMU, PCMA", "no_codec")
    if any(m.dtls is None or not m.dtls.fingerprints or m.dtls.role is None for m in audio):
        raise SignalingError(
            "the offer's audio has no DTLS parameters (a=fingerprint and a=setup)", "no_dtls"
        )
    if "a=ice-ufrag:" not in sdp or "a=ice-pwd:" not in sdp:
        raise SignalingError("the offer has no ICE credentials (a=ice-ufrag / a=ice-pwd)", "no_ice")


def rtc_configuration(servers: list[IceServer]) -> RTCConfiguration:
    """aiortc configuration from ``ServerConfig.ice_servers`` (STUN/TURN)."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in servers]
    )


def browser_ice_servers(servers: list[IceServer]) -> list[dict[str, object]]:
    """The same servers in the shape of the browser's ``RTCConfiguration.iceServers``."""
    out: list[dict[str, object]] = []
    for s in servers:
        entry: dict[str, object] = {"urls": s.urls}
        if s.username is not None:
            entry["username"] = s.username
        if s.credential is not None:
            entry["credential"] = s.credential
        out.append(entry)
    return out
