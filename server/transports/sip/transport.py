"""aiosipua's UDP and TCP transports with the guards and hooks the bridge needs.

- oversized datagrams/messages are dropped with a log line before parsing (``max_message_bytes``), and
  unreadable ones with one throttled line (aiosipua logs a traceback for each);
- the top Via of every request records the true source (aiosipua keeps a forged ``received=``);
- empty keep-alives (CRLF) are ignored instead of logged as parse failures;
- the arrival time of the message being dispatched is kept (``received_at``), for call-setup timing;
- every message sent is reported to ``on_sent`` (transaction tracking); ``send_untracked`` skips it;
- over TCP, requests we send say ``SIP/2.0/TCP`` in Via and ``transport=tcp`` in Contact (aiosipua always
  writes UDP), so the peer keeps the dialog on the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

from aiosipua import SipMessage, SipRequest, SipResponse, TcpSipTransport, UdpSipTransport

from server.transports.sip.messages import set_via_transport, stamp_via
from server.transports.sip.throttle import LogThrottle

log = logging.getLogger(__name__)
_warn = LogThrottle(log)

SentHook = Callable[[SipRequest | SipResponse, tuple[str, int]], None]


class _DatagramProtocol(asyncio.DatagramProtocol):
    """aiosipua's UDP protocol asserts ``isinstance(transport, asyncio.DatagramTransport)``, which Python
    3.11's selector transport fails (an error logged at every start); this one only forwards datagrams."""

    def __init__(self, owner: GuardedUdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self._owner._dispatch(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket: %s", exc)  # ICMP port unreachable from a peer that went away


@dataclass
class _Guarded:
    """Guards and hooks shared by both transports (a mixin placed before the aiosipua class)."""

    max_message_bytes: int = 16_384
    on_sent: SentHook | None = field(default=None, repr=False)
    received_at: float = 0.0
    dropped_oversized: int = 0
    dropped_malformed: int = 0

    def _dispatch(self, data: bytes, addr: tuple[str, int]) -> None:
        """Replaces aiosipua's: size guard first, one throttled line (not a traceback) per bad message,
        and a Via stamped with the true source whatever the sender wrote there."""
        if len(data) > self.max_message_bytes:
            self.dropped_oversized += 1
            _warn.warning(
                "size",
                "dropped a %d-byte SIP message from %s (limit %d)",
                len(data),
                addr[0],
                self.max_message_bytes,
            )
            return
        if not data.strip():
            return  # CRLF keep-alive
        self.received_at = time.monotonic()
        try:
            message = SipMessage.parse(data)
            if isinstance(message, SipRequest):
                stamp_via(message, addr, force_rport=self.reliable)  # type: ignore[attr-defined]
        except (ValueError, IndexError, UnicodeError) as exc:
            self.dropped_malformed += 1
            _warn.warning("parse", "dropped an unreadable SIP message from %s: %s", addr[0], str(exc)[:120])
            return
        on_message = self.on_message  # type: ignore[attr-defined]
        if on_message is not None:
            on_message(message, addr)

    def send(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        if not self.send_untracked(message, addr):
            return
        if self.on_sent is not None:
            self.on_sent(message, addr)

    def send_untracked(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> bool:
        """Send; False when the destination cannot be reached (like a lost datagram: logged, dropped).

        Only IP literals are sent to: asyncio's UDP ``sendto`` resolves a host name synchronously (blocking
        the loop) and closes the whole socket on a name it cannot encode.
        """
        try:
            ip_address(addr[0])
            super().send(message, addr)  # type: ignore[misc]
        except (OSError, RuntimeError, TypeError, ValueError, UnicodeError) as exc:
            _warn.warning("send", "cannot send SIP to %s: %s", addr, exc)
            return False
        return True


@dataclass
class GuardedUdpTransport(_Guarded, UdpSipTransport):
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(self), local_addr=self.local_addr
        )
        self._udp_transport = transport

    @property
    def bound_port(self) -> int:
        transport = self._udp_transport
        return int(transport.get_extra_info("sockname")[1]) if transport is not None else self.local_addr[1]


@dataclass
class GuardedTcpTransport(_Guarded, TcpSipTransport):
    async def ensure_connection(self, addr: tuple[str, int], timeout: float = 5.0) -> bool:
        """Open a connection to ``addr`` unless one exists (ours or the peer's); False when it fails."""
        if addr in self._connections:
            return True
        try:
            await asyncio.wait_for(self.connect(addr), timeout)
        except (OSError, TimeoutError) as exc:
            log.warning("no TCP connection to %s:%d: %s", addr[0], addr[1], exc)
            return False
        return True

    def send_untracked(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> bool:
        if isinstance(message, SipRequest):
            set_via_transport(message, "TCP")
        contact = message.headers.get_first("contact")
        if contact and "transport=" not in contact.lower():
            tagged = (
                contact.replace(">", ";transport=tcp>", 1) if ">" in contact else f"{contact};transport=tcp"
            )
            message.headers.set_single("Contact", tagged)
        return super().send_untracked(message, addr)
