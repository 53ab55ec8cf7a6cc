"""What the user agent's collaborators (answering, dialling, in-dialog handling) share."""

from __future__ import annotations

from dataclasses import dataclass

from server.transports.sip.config import SipConfig
from server.transports.sip.media import MediaSettings
from server.transports.sip.registry import CallHandler, CallRegistry


@dataclass
class SipContext:
    config: SipConfig
    registry: CallRegistry
    sdp_host: str  # the address our SDP names (advertised_host when behind NAT)
    on_call: CallHandler | None

    def media_settings(self) -> MediaSettings:
        c = self.config
        return MediaSettings(
            host=c.rtp_host or c.listen_host,
            port_range=(c.rtp_port_min, c.rtp_port_max),
            jitter_frames=c.jitter_buffer_frames,
            media_timeout_s=c.media_timeout_s,
            no_speech_s=c.no_speech_hangup_s,
        )
