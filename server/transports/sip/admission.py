"""Decides, before aiosipua creates any call state, whether a new INVITE may become a call.

Refusals are answered here with a complete response (the library's ``reject`` cannot add headers such as
Retry-After or WWW-Authenticate): 503 + Retry-After when draining or at ``max_calls``, 401 + a digest
challenge when inbound auth is on, 400 for an unreadable SDP, 488 when no codec is in common.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

from aiosipua import SdpMessage, SipRequest

from server.transports.sip import sdp
from server.transports.sip.config import SipConfig
from server.transports.sip.digest import DigestAuthenticator
from server.transports.sip.errors import SdpError
from server.transports.sip.identity import CallerIdentity, caller_identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    why: str = ""  # for the log line and the metric label


@dataclass
class AdmittedInvite:
    offer: SdpMessage
    identity: CallerIdentity
    received_at: float
    auth_user: str | None
    cancelled: bool = False


class PeerFilter:
    """``sip.allowed_peers``: source networks allowed to send SIP at all."""

    def __init__(self, config: SipConfig) -> None:
        self._networks = list(config.allowed_peers)

    def allows(self, host: str) -> bool:
        try:
            address = ip_address(host.split("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self._networks)


class InviteAdmission:
    def __init__(self, config: SipConfig) -> None:
        self._config = config
        self._auth = DigestAuthenticator(config.inbound_auth) if config.inbound_auth else None
        self.accepting = True
        # The node's own limit over every transport (``server.max_calls``): True when no line is free.
        self.node_full: Callable[[], bool] | None = None

    def check(
        self, request: SipRequest, source: tuple[str, int], *, active_calls: int, received_at: float
    ) -> Refusal | AdmittedInvite:
        retry = {"Retry-After": str(self._config.retry_after_s)}
        if not self.accepting:
            return Refusal(503, "Service Unavailable", retry, "draining")
        auth_user = None
        if self._auth is not None:
            auth_user, stale = self._auth.check(request)
            if auth_user is None:
                challenge = {"WWW-Authenticate": self._auth.challenge(stale=stale)}
                return Refusal(401, "Unauthorized", challenge, "auth")
        if active_calls >= self._config.max_calls or (self.node_full is not None and self.node_full()):
            return Refusal(503, "Service Unavailable", retry, "capacity")
        try:
            offer = self._offer(request)
        except SdpError as exc:
            reason = "Bad Request" if exc.status == 400 else "Not Acceptable Here"
            return Refusal(
                exc.status, reason, {"Warning": f'399 voice-agent "{_header_safe(str(exc))}"'}, "sdp"
            )
        identity = caller_identity(request, source, trust_asserted=self._config.trust_asserted_identity)
        return AdmittedInvite(offer, identity, received_at, auth_user)

    def _offer(self, request: SipRequest) -> SdpMessage:
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if not request.body or content_type != "application/sdp":
            # Offer-less INVITEs (offer in our 200, answer in the ACK) are not supported.
            raise SdpError("INVITE without an SDP offer is not supported")
        offer = sdp.parse(request.text)
        sdp.answer_offer(  # dry run: 488 now rather than after a port was bound
            offer, local_ip="0.0.0.0", rtp_port=9, codecs=list(self._config.codecs), session_id="0"
        )
        return offer


def _header_safe(text: str) -> str:
    return text.replace('"', "'").replace("\r", " ").replace("\n", " ")[:200]
