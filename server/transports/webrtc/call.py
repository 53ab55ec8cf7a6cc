"""``WebRTCCall``: a browser's call over aiortc, as a thin adapter around ``server.calls.CallSession``.

It answers the SDP offer with an ``RTCPeerConnection``, feeds the caller's decoded Opus into
``session.listen`` (``caller_audio``), sends ``session.read_frame`` out on a paced 48 kHz track (Opus's own
clock, so aiortc's encoder never resamples), and maps the peer connection's state onto the session:
``connected`` greets the caller, ``failed``/``closed`` end the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from server.calls.identity import CallIdentity
from server.calls.session import CallDeps, CallSession
from server.transports.webrtc.signaling import rtc_configuration
from server.transports.webrtc.tracks import OPUS_RATE, PacedAudioTrack, caller_audio, set_audio_receive_buffer

log = logging.getLogger(__name__)


class WebRTCCall:
    """``await answer(offer)`` accepts the call; the session ends it (``session.close``) and closes us."""

    kind = "webrtc"

    def __init__(
        self,
        deps: CallDeps,
        user_id: str | None = None,
        *,
        identity: CallIdentity | None = None,
        ice_servers: list[Any] | None = None,
    ) -> None:
        """``identity``: who the call is for (``CallSession``); ``ice_servers``: this call's own STUN/TURN
        servers (ephemeral TURN credentials), else ``deps.ice_servers``."""
        self.deps = deps
        self.ice_servers = ice_servers if ice_servers is not None else deps.ice_servers
        self.session = CallSession(deps, user_id, output_rate=OPUS_RATE, transport=self, identity=identity)
        self.track = PacedAudioTrack(self.session.read_frame, OPUS_RATE)
        self.pc: RTCPeerConnection | None = None

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "new"

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Answer a WebRTC offer (aiortc gathers ICE candidates before returning: no trickle)."""
        pc = self.pc = RTCPeerConnection(rtc_configuration(self.ice_servers))
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        await pc.setRemoteDescription(offer)
        set_audio_receive_buffer(pc, self.deps.call.receive_buffer_frames)
        pc.addTrack(self.track)
        answer = await pc.createAnswer()
        await asyncio.wait_for(pc.setLocalDescription(answer), self.deps.call.ice_gather_timeout_s)
        self.session.start()
        return pc.localDescription

    async def close(self) -> None:
        self.track.stop()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.session.listen(caller_audio(track))

    async def _on_connection_state(self) -> None:
        state = self.connection_state
        self.session.events.emit("connection", {"state": state})
        if state == "connected":
            self.session.connected()
        elif state in ("failed", "closed"):
            self.session.spawn(self.session.close("ice_failed" if state == "failed" else "closed"), "close")
