"""A bare UDP SIP client for tests of broken and hostile input (what a well-behaved peer never sends).

``RawSip`` sends exactly the bytes it is given from a socket on a chosen loopback address and collects
what comes back; ``invite()`` builds a plain INVITE with SDP whose parts a test can spoil.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time


class RawSip:
    def __init__(self, target: tuple[str, int], bind_host: str = "127.0.0.1") -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind_host, 0))
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()

    def send(self, data: bytes | str) -> None:
        self.sock.sendto(data.encode() if isinstance(data, str) else data, self.target)

    async def responses(self, seconds: float = 1.0, until: str | None = None) -> list[str]:
        """Everything received within ``seconds`` (or until a message whose first line has ``until``)."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(65536).decode(errors="replace"))
                if until is not None and until in got[-1].split("\r\n", 1)[0]:
                    break
            except BlockingIOError:
                await asyncio.sleep(0.01)
        return got

    def invite(
        self,
        *,
        call_id: str | None = None,
        branch: str | None = None,
        sdp: str | None = None,
        headers: str = "",
    ) -> str:
        call_id = call_id or f"raw-{os.urandom(6).hex()}"
        branch = branch or f"z9hG4bK{os.urandom(6).hex()}"
        body = sdp if sdp is not None else self.sdp()
        return (
            f"INVITE sip:agent@{self.target[0]}:{self.target[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport\r\n"
            f"From: <sip:+15550001111@{self.host}>;tag=raw{os.urandom(3).hex()}\r\n"
            f"To: <sip:agent@{self.target[0]}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:raw@{self.host}:{self.port}>\r\n"
            f"Max-Forwards: 70\r\n{headers}Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )

    def sdp(
        self,
        formats: str = "0 101",
        rtpmap: str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000",
    ) -> str:
        return (
            f"v=0\r\no=raw 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\nt=0 0\r\n"
            f"m=audio 40000 RTP/AVP {formats}\r\n{rtpmap}\r\n"
        )

    def ack_and_bye(self, invite: str, response: str) -> tuple[str, str]:
        """An ACK for ``response`` (a 2xx to ``invite``) and a BYE ending the dialog."""
        to = _header(response, "To")
        lines = {name: _header(invite, name) for name in ("From", "Call-ID")}
        common = f"From: {lines['From']}\r\nTo: {to}\r\nCall-ID: {lines['Call-ID']}\r\nMax-Forwards: 70\r\n"
        uri = f"sip:agent@{self.target[0]}:{self.target[1]}"

        def request(method: str, seq: int) -> str:
            via = f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{os.urandom(6).hex()};rport\r\n"
            return f"{method} {uri} SIP/2.0\r\n{via}{common}CSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"

        return request("ACK", 1), request("BYE", 2)

    def close(self) -> None:
        self.sock.close()


def status(message: str) -> int:
    first = message.split("\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 and first[0] == "SIP/2.0" else 0


def _header(message: str, name: str) -> str:
    found = re.search(rf"^{name}:\s*(.*)$", message, re.MULTILINE | re.IGNORECASE)
    return found.group(1).strip() if found else ""


def header(message: str, name: str) -> str:
    return _header(message, name)
