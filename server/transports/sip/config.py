"""Typed settings of the SIP bridge (the ``sip`` section).

Defaults listen on loopback only and accept requests from loopback peers only, so enabling SIP never opens
the node to the network by accident; a trunk or PBX is added by widening ``listen_host`` and
``allowed_peers`` deliberately.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

Codec = Literal["PCMU", "PCMA"]


class SipTrunkConfig(BaseModel, extra="forbid"):
    """Where outbound calls go, and the account the node registers there (a carrier trunk or a PBX)."""

    # Address of the registrar/proxy that takes our requests: "sip:pbx.example.com:5060" (UDP).
    uri: str
    # Domain of our address-of-record and of dialled numbers; defaults to the host of ``uri``.
    domain: str | None = None
    username: str | None = None  # user part of our AOR, also the digest user unless auth_username is set
    auth_username: str | None = None
    password: SecretStr | None = None
    registration: bool = True  # False: the trunk trusts our IP address (no REGISTER)
    register_interval_s: int = Field(300, ge=30, le=86_400)
    caller_id: str | None = None  # user part of From on outbound calls; defaults to username

    @field_validator("uri")
    @classmethod
    def _sip_uri(cls, value: str) -> str:
        if not value.startswith("sip:") or len(value) <= 4:
            raise ValueError(f"trunk uri must look like sip:host[:port], got {value!r}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SipTrunkConfig:
        if self.registration and not self.username:
            raise ValueError("trunk.registration needs trunk.username (the account to register)")
        return self


class InboundAuthConfig(BaseModel, extra="forbid"):
    """Digest authentication asked of callers (RFC 3261 §22) before an INVITE is taken."""

    realm: str = "voice-agent"
    users: dict[str, SecretStr] = Field(min_length=1)  # user name -> password
    nonce_ttl_s: int = Field(300, ge=10, le=3600)


class SipConfig(BaseModel, extra="forbid"):
    enabled: bool = False
    listen_host: str = "127.0.0.1"
    udp_port: int = Field(5060, ge=0, le=65535)  # 0: any free port (tests)
    tcp: bool = True  # also listen on TCP, on the same port number as UDP
    # NAT: the public address put in Via, Contact and SDP when the node sits behind a 1:1 NAT.
    advertised_host: str | None = None
    advertised_port: int | None = Field(None, ge=1, le=65535)
    rtp_host: str | None = None  # where RTP sockets bind; defaults to listen_host
    rtp_port_min: int = Field(0, ge=0, le=65535)  # 0/0: the OS picks a free port per call
    rtp_port_max: int = Field(0, ge=0, le=65535)
    user_agent: str = "voice-agent"
    trunk: SipTrunkConfig | None = None
    # Source addresses allowed to send SIP at all; others get 403 (requests) or are dropped (responses).
    allowed_peers: list[IPv4Network | IPv6Network] = [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    trust_asserted_identity: bool = True  # take P-Asserted-Identity from allowed peers as the caller number
    inbound_auth: InboundAuthConfig | None = None
    codecs: list[Codec] = Field(["PCMU", "PCMA"], min_length=1)  # accepted codecs, in offer order
    ring_timeout_s: float = Field(30.0, gt=0, le=600)
    max_calls: int = Field(20, ge=1)  # inbound + outbound calls at once; beyond: 503 + Retry-After
    retry_after_s: int = Field(10, ge=1, le=3600)
    no_speech_hangup_s: float | None = Field(20.0, gt=0)  # caller silent this long: NoSpeech event
    media_timeout_s: float = Field(30.0, gt=0)  # no RTP at all this long (not on hold): hang up
    max_message_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    jitter_buffer_frames: int = Field(1, ge=1, le=8)  # frames held for reordering (20 ms each)

    @field_validator("codecs")
    @classmethod
    def _unique_codecs(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"sip.codecs lists a codec twice: {value}")
        return value

    @model_validator(mode="after")
    def _rtp_range(self) -> SipConfig:
        if (self.rtp_port_min == 0) != (self.rtp_port_max == 0):
            raise ValueError("sip.rtp_port_min and rtp_port_max must both be set (or both 0)")
        if self.rtp_port_min > self.rtp_port_max:
            raise ValueError("sip.rtp_port_min must not exceed rtp_port_max")
        return self
