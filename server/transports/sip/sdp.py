"""SDP offer/answer for G.711 audio with RFC 4733 telephone-events (RFC 3264).

aiosipua 0.7.1's ``negotiate_sdp`` names telephone-event payload 101 in every answer unless told otherwise,
so a peer that offered another number (sipp uses 96) would send digits we do not expect and expect digits
on a number we never use. ``answer_offer`` always answers with the offer's own number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from ipaddress import ip_address

from aiosipua import (
    Codec,
    ConnectionData,
    MediaDescription,
    Origin,
    SdpMessage,
    SdpNegotiationError,
    TimingField,
    negotiate_sdp,
    parse_sdp,
    serialize_sdp,
)

from server.transports.sip.errors import SdpError

PAYLOAD_TYPES: dict[str, int] = {"PCMU": 0, "PCMA": 8}
CODEC_NAMES: dict[int, str] = {pt: name for name, pt in PAYLOAD_TYPES.items()}
DEFAULT_DTMF_PAYLOAD_TYPE = 101  # used in our own offers; answers reuse the offer's number
PTIME_MS = 20
_HOLD_DIRECTIONS = ("sendonly", "inactive")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass(frozen=True)
class MediaParams:
    """What both sides agreed on for the audio stream, as seen from our side."""

    codec: str  # "PCMU" or "PCMA"
    payload_type: int
    dtmf_payload_type: int | None  # telephone-event number both sides use; None: peer has no RFC 4733
    remote_rtp: tuple[str, int] | None  # where the peer asked for RTP; None: no address (hold)
    remote_direction: str  # the peer's a= direction

    @property
    def remote_holds(self) -> bool:
        """The peer put the call on hold (sendonly/inactive, or c=0.0.0.0 in the RFC 2543 style)."""
        return self.remote_direction in _HOLD_DIRECTIONS or self.remote_rtp is None

    @property
    def we_may_send(self) -> bool:
        return self.remote_direction in ("sendrecv", "recvonly") and self.remote_rtp is not None


def parse(text: str) -> SdpMessage:
    """Parse an SDP body; anything aiosipua cannot read becomes ``SdpError`` (answered 400)."""
    try:
        sdp = parse_sdp(text)
    except (ValueError, IndexError, TypeError) as exc:
        raise SdpError(f"unreadable SDP body: {exc}", status=400) from exc
    if sdp.audio is None:
        raise SdpError("SDP has no audio stream (m=audio)")
    return sdp


def serialize(sdp: SdpMessage) -> str:
    return serialize_sdp(sdp)


def answer_offer(
    offer: SdpMessage,
    *,
    local_ip: str,
    rtp_port: int,
    codecs: list[str],
    session_id: str,
    session_version: int = 1,
) -> tuple[SdpMessage, MediaParams]:
    """Our answer to ``offer`` (first offered codec we accept) and the agreed parameters.

    Raises ``SdpError`` (488) when no offered codec is in ``codecs`` or the offer wants secure RTP.
    """
    audio = _audio(offer)
    if audio.proto.upper() != "RTP/AVP":
        raise SdpError(f"unsupported media profile {audio.proto!r}: only RTP/AVP (no SRTP)")
    dtmf_pt = _telephone_event(audio)
    try:
        answer, chosen = negotiate_sdp(
            offer,
            local_ip=local_ip,
            rtp_port=rtp_port,
            supported_codecs=[PAYLOAD_TYPES[c] for c in codecs],
            dtmf_payload_type=dtmf_pt or 0,  # the workaround: the offer's number, never a fixed 101
            ptime=PTIME_MS,
            session_id=session_id,
        )
    except SdpNegotiationError as exc:
        raise SdpError(f"no codec in common: {exc}") from exc
    answer.origin.session_version = str(session_version)
    params = MediaParams(CODEC_NAMES[chosen], chosen, dtmf_pt, _rtp_address(offer), _direction(offer))
    return answer, params


def build_offer(
    *, local_ip: str, rtp_port: int, codecs: list[str], session_id: str | None = None
) -> SdpMessage:
    """An offer listing ``codecs`` in order plus telephone-event/8000 on payload 101."""
    session_id = session_id or str(int(time.time()))
    dtmf = DEFAULT_DTMF_PAYLOAD_TYPE
    formats = [str(PAYLOAD_TYPES[c]) for c in codecs] + [str(dtmf)]
    rtpmap = [f"{PAYLOAD_TYPES[c]} {c}/8000" for c in codecs] + [f"{dtmf} telephone-event/8000"]
    media = MediaDescription(
        media="audio",
        port=rtp_port,
        proto="RTP/AVP",
        formats=formats,
        attributes={"rtpmap": rtpmap, "fmtp": [f"{dtmf} 0-16"], "ptime": [str(PTIME_MS)], "sendrecv": []},
        codecs=[Codec(PAYLOAD_TYPES[c], c, 8000, 1) for c in codecs] + [Codec(dtmf, "telephone-event", 8000)],
    )
    addr_type = "IP6" if ":" in local_ip else "IP4"
    return SdpMessage(
        origin=Origin("-", session_id, session_id, "IN", addr_type, local_ip),
        session_name="-",
        connection=ConnectionData("IN", addr_type, local_ip),
        timing=TimingField(0, 0),
        media=[media],
    )


def read_answer(answer: SdpMessage, offered: list[str]) -> MediaParams:
    """The parameters a peer chose in its answer to our offer of ``offered`` codecs."""
    audio = _audio(answer)
    if audio.port == 0:
        raise SdpError("the peer rejected the audio stream (port 0)")
    for codec in audio.codecs:
        name = CODEC_NAMES.get(codec.payload_type)
        if name in offered and (not codec.encoding_name or codec.encoding_name.upper() == name):
            return MediaParams(
                name, codec.payload_type, _telephone_event(audio), _rtp_address(answer), _direction(answer)
            )
    raise SdpError(f"answer chose no codec we offered ({offered}): {[c.encoding_name for c in audio.codecs]}")


def _audio(sdp: SdpMessage) -> MediaDescription:
    audio = sdp.audio
    if audio is None:
        raise SdpError("SDP has no audio stream (m=audio)")
    return audio


def _telephone_event(audio: MediaDescription) -> int | None:
    for codec in audio.codecs:
        if codec.encoding_name.lower() == "telephone-event" and codec.clock_rate in (0, 8000):
            return codec.payload_type
    return None


def _rtp_address(sdp: SdpMessage) -> tuple[str, int] | None:
    """The peer's RTP address; an IP literal only: a host name would make every ``sendto`` resolve it,
    blocking the event loop 50 times a second (and a peer could name any host it likes)."""
    addr = sdp.rtp_address
    if addr is None or addr[1] == 0 or addr[0] in ("0.0.0.0", "::"):
        return None
    try:
        ip_address(addr[0])
    except ValueError:
        raise SdpError(f"the SDP connection address must be an IP address, got {addr[0][:64]!r}") from None
    if not 0 < addr[1] < 65536:
        raise SdpError(f"the SDP media port {addr[1]} is out of range")
    return addr


def _direction(sdp: SdpMessage) -> str:
    audio = _audio(sdp)
    for attrs in (audio.attributes, sdp.attributes):
        for direction in _DIRECTIONS:
            if direction in attrs:
                return direction
    return "sendrecv"


@dataclass
class LocalSdp:
    """Our side of one call's SDP: same origin session id, version bumped on every new answer (RFC 3264 §8)."""

    local_ip: str
    rtp_port: int
    session_id: str
    version: int = 0
    last: SdpMessage | None = None

    def answer(self, offer: SdpMessage, codecs: list[str]) -> tuple[SdpMessage, MediaParams]:
        self.version += 1
        answer, params = answer_offer(
            offer,
            local_ip=self.local_ip,
            rtp_port=self.rtp_port,
            codecs=codecs,
            session_id=self.session_id,
            session_version=self.version,
        )
        self.last = answer
        return answer, params
