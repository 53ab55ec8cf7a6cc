"""One listening transport (UDP or TCP) with its aiosipua UAS/UAC pair and our transaction layers.

aiosipua's UAC never reads the socket itself: responses to outgoing requests reach it only through a UAS
listening on the same transport. So every transport gets both, and ``SipUserAgent`` routes each received
message through its guards and then into this pair.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiosipua import SipRequest, SipResponse, SipUAC, SipUAS

from server.transports.sip.messages import MalformedMessage
from server.transports.sip.transactions import ClientTransactions, ServerTransactions
from server.transports.sip.transport import GuardedTcpTransport, GuardedUdpTransport

log = logging.getLogger(__name__)

MessageHandler = Callable[["SignalingStack", SipRequest | SipResponse, tuple[str, int]], None]


class SignalingStack:
    def __init__(
        self,
        transport: GuardedUdpTransport | GuardedTcpTransport,
        *,
        advertised: tuple[str, int] | None,
        user_agent: str,
        on_timeout: Callable[[SipRequest], None],
    ) -> None:
        self.transport = transport
        self.reliable = isinstance(transport, GuardedTcpTransport)
        self.name = "TCP" if self.reliable else "UDP"
        self.uac = SipUAC(transport, advertised_addr=advertised)
        # Session timers stay off: a refresh we cannot send would end healthy calls after their interval.
        self.uas = SipUAS(transport, user_agent=user_agent, uac=self.uac, advertised_addr=advertised)
        self.client = ClientTransactions(
            transport.send_untracked, reliable=self.reliable, on_timeout=on_timeout
        )
        self.server = ServerTransactions(transport.send_reply)
        transport.on_sent = self._sent

    async def start(self, on_message: MessageHandler) -> None:
        # SipUAS.start() would install its own handler: ours runs the guards first, then hands over.
        self.transport.on_message = lambda message, addr: on_message(self, message, addr)
        await self.transport.start()

    def deliver(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        """Hand a message that passed the guards to aiosipua (UAS for requests, UAC for responses)."""
        if isinstance(message, SipResponse):
            self.uac.handle_response(message, addr)
        else:
            self.uas._on_message(message, addr)  # private: the library's single request entry point

    async def connect(self, addr: tuple[str, int]) -> bool:
        """Make sure requests to ``addr`` can be sent: a no-op over UDP, a connection over TCP."""
        if not isinstance(self.transport, GuardedTcpTransport):
            return True
        return await self.transport.ensure_connection(addr)

    def reply(self, response: SipResponse) -> None:
        self.transport.send_reply(response)

    async def stop(self) -> None:
        self.client.close()
        await self.uas.stop()  # cancels the library's timers and closes the transport

    def _sent(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        try:
            if isinstance(message, SipRequest):
                self.client.sent(message, addr)
            else:
                self.server.responded(message)
        except MalformedMessage:  # a response to a request with no usable Via/CSeq: nothing to track
            return
