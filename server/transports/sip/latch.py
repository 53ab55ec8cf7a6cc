"""Symmetric RTP (RFC 4961 style latching): send to where the peer's packets come from, and only that.

aiortp's own ``symmetric_rtp`` follows the source of *every* packet, so anyone who can reach the port can
redirect a call's audio to themselves with a single datagram. Here the stream latches once: at once to
the address the SDP named, or to another address (a NAT, or baresip advertising its LAN address) after it
sent ``PROBATION_PACKETS`` packets in sequence with one SSRC; after that every other source is ignored
until a new SDP (re-INVITE) names a new address.
"""

from __future__ import annotations

import logging

from server.transports.sip.throttle import LogThrottle

log = logging.getLogger(__name__)
_warn = LogThrottle(log)

PROBATION_PACKETS = 3


class SourceLatch:
    """Decides, packet by packet, whether an RTP packet comes from the call's peer."""

    def __init__(self, expected: tuple[str, int] | None) -> None:
        self.expected = expected
        self.latched: tuple[str, int] | None = None
        self._candidate: tuple[str, int] | None = None
        self._candidate_ssrc = -1
        self._candidate_seq = -1
        self._candidate_count = 0

    @property
    def destination(self) -> tuple[str, int] | None:
        """Where our RTP goes: the latched source, else the address from the SDP."""
        return self.latched or self.expected

    def reset(self, expected: tuple[str, int] | None) -> None:
        """A new SDP named ``expected``: forget the latch and learn the source again."""
        if expected == self.expected and self.latched is not None:
            return
        self.expected = expected
        self.latched = None
        self._candidate = None
        self._candidate_count = 0

    def accept(self, source: tuple[str, int], ssrc: int, seq: int) -> bool:
        """True when the packet is from the peer (latching on it when due), False to ignore it."""
        if self.latched is not None:
            if source == self.latched:
                return True
            _warn.warning(
                f"{source[0]}:{source[1]}",
                "ignoring RTP from %s:%d: stream latched to %s:%d",
                *source,
                *self.latched,
            )
            return False
        if source == self.expected:
            self._latch(source, "the SDP address")
            return True
        return self._probation(source, ssrc, seq)

    def _probation(self, source: tuple[str, int], ssrc: int, seq: int) -> bool:
        in_sequence = (
            source == self._candidate
            and ssrc == self._candidate_ssrc
            and seq == (self._candidate_seq + 1) & 0xFFFF
        )
        if in_sequence:
            self._candidate_count += 1
        else:
            self._candidate, self._candidate_ssrc, self._candidate_count = source, ssrc, 1
        self._candidate_seq = seq
        if self._candidate_count >= PROBATION_PACKETS:
            self._latch(source, f"{PROBATION_PACKETS} packets in sequence (the SDP named {self.expected})")
            return True
        return False

    def _latch(self, source: tuple[str, int], why: str) -> None:
        self.latched = source
        log.info("RTP latched to %s:%d (%s)", source[0], source[1], why)
