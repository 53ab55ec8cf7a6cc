"""A UDP relay that loses chosen datagrams: the network fault behind the retransmission tests.

It sits between the user agent (the first address that is not the server) and a real peer, forwards
every datagram both ways, and drops the first ``n`` whose start matches a given prefix (b"INVITE ").
"""

from __future__ import annotations

import asyncio


class LossyRelay(asyncio.DatagramProtocol):
    def __init__(self, server: tuple[str, int], drop: dict[bytes, int]) -> None:
        self.server = server
        self.drop = dict(drop)
        self.dropped: list[str] = []
        self.forwarded: list[str] = []
        self._client: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def start(cls, server: tuple[str, int], drop: dict[bytes, int]) -> LossyRelay:
        relay = cls(server, drop)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
        return relay

    @property
    def port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        first_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        for prefix, left in self.drop.items():
            if left and data.startswith(prefix):
                self.drop[prefix] = left - 1
                self.dropped.append(first_line)
                return
        if addr == self.server:
            if self._client is not None:
                self._transport.sendto(data, self._client)
        else:
            self._client = addr
            self._transport.sendto(data, self.server)
        self.forwarded.append(first_line)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
