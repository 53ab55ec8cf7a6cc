"""Small builders and readers of SIP messages that aiosipua 0.7.1 does not offer.

- responses to requests the library never sees (403, 401, 503 + Retry-After, 488...), built before any
  call state exists;
- the ACK of a non-2xx final response to our INVITE (RFC 3261 §17.1.1.3): aiosipua sends none, so a
  trunk that answered 486 or 407 keeps retransmitting it for 32 s;
- the transaction key of a message (top Via branch + CSeq) for retransmission matching.
"""

from __future__ import annotations

import os

from aiosipua import Dialog, SipRequest, SipResponse, parse_via, stringify_uri, stringify_via

from server.transports.sip.errors import SipError

REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
}

TransactionKey = tuple[str, str, str, int]  # call-id, top Via branch, CSeq method, CSeq number


class MalformedMessage(SipError):
    """A message lacks what every SIP message needs (Via branch, CSeq); it is dropped with a log line."""


def build_response(
    request: SipRequest, status: int, reason: str = "", headers: dict[str, str] | None = None
) -> SipResponse:
    """A response to ``request`` outside any dialog: Via/From/Call-ID/CSeq copied, To tagged."""
    response = SipResponse(status_code=status, reason_phrase=reason or REASONS.get(status, ""))
    for via in request.headers.get("via"):
        response.headers.append("Via", via)
    for name in ("From", "Call-ID", "CSeq"):
        value = request.headers.get_first(name)
        if value is not None:
            response.headers.set_single(name, value)
    to = request.headers.get_first("to")
    if to is not None:
        response.headers.set_single("To", to if ";tag=" in to else f"{to};tag={os.urandom(6).hex()}")
    for name, value in (headers or {}).items():
        response.headers.set_single(name, value)
    return response


def build_failure_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a 3xx-6xx answer to ``invite``: same branch, R-URI and routes, the response's To."""
    ack = SipRequest(method="ACK", uri=invite.uri)
    top_via = invite.headers.get_first("via")
    if top_via is None or invite.cseq is None:
        raise MalformedMessage("our INVITE has no Via or CSeq")
    ack.headers.append("Via", top_via)
    for name in ("From", "Call-ID"):
        value = invite.headers.get_first(name)
        if value is not None:
            ack.headers.set_single(name, value)
    ack.headers.set_single("To", response.headers.get_first("to") or invite.headers.get_first("to") or "")
    ack.headers.set_single("CSeq", f"{invite.cseq.seq} ACK")
    ack.headers.set_single("Max-Forwards", "70")
    for route in invite.headers.get("route"):
        ack.headers.append("Route", route)
    return ack


def transaction_key(message: SipRequest | SipResponse) -> TransactionKey:
    """Identifies the transaction a message belongs to; raises ``MalformedMessage`` without Via/CSeq."""
    try:
        vias = message.via
        cseq = message.cseq
    except (ValueError, IndexError) as exc:
        raise MalformedMessage(f"unreadable Via or CSeq: {exc}") from exc
    if not vias or cseq is None:
        raise MalformedMessage("no Via or CSeq header")
    # RFC 2543 peers have no magic-cookie branch; the From tag then stands in for it
    branch = vias[0].branch or f"2543:{message.from_addr.tag if message.from_addr else ''}"
    return (message.call_id or "", branch, cseq.method.upper(), cseq.seq)


def is_new_dialog(request: SipRequest) -> bool:
    to = request.to_addr
    return to is None or not to.tag


def stamp_via(request: SipRequest, source: tuple[str, int], *, force_rport: bool) -> None:
    """Record where the request really came from in its top Via (RFC 3261 §18.2.1, RFC 3581).

    ``received`` is always overwritten with the source address, so a response never goes to a host the
    sender named (a forged ``received=`` would aim our responses at a third party, or make ``sendto``
    resolve a name on the event loop). ``rport`` gets the source port when asked for, and always over TCP
    (``force_rport``), where responses must find the connection the request came on.
    """
    vias = request.headers.get("via")
    if not vias:
        return
    top = parse_via(vias[0])
    top.params["received"] = source[0]
    if force_rport or "rport" in top.params:
        top.params["rport"] = str(source[1])
    rest = vias[1:]
    request.headers.remove("Via")
    request.headers.append("Via", stringify_via(top))
    for via in rest:
        request.headers.append("Via", via)


def set_via_transport(request: SipRequest, transport: str) -> None:
    """aiosipua writes ``SIP/2.0/UDP`` into every Via it builds; over TCP the Via must say TCP."""
    vias = request.headers.get("via")
    if not vias:
        return
    top = parse_via(vias[0])
    if top.transport.upper() == transport:
        return
    top.transport = transport
    rest = vias[1:]
    request.headers.remove("Via")
    request.headers.append("Via", stringify_via(top))
    for via in rest:
        request.headers.append("Via", via)


def build_2xx_ack(dialog: Dialog, invite_seq: int, via_host: str, via_port: int) -> SipRequest:
    """The ACK of a 2xx to our INVITE, for answers the library no longer tracks (a 200 that crossed our
    CANCEL): a new branch, the dialog's remote target and route set, the INVITE's CSeq number."""
    ack = SipRequest(method="ACK", uri=dialog.remote_target or dialog.remote_uri)
    ack.headers.append("Via", f"SIP/2.0/UDP {via_host}:{via_port};branch=z9hG4bK{os.urandom(8).hex()};rport")
    ack.headers.set_single("From", f"<{dialog.local_uri}>;tag={dialog.local_tag}")
    ack.headers.set_single("To", f"<{dialog.remote_uri}>;tag={dialog.remote_tag}")
    ack.headers.set_single("Call-ID", dialog.call_id)
    ack.headers.set_single("CSeq", f"{invite_seq} ACK")
    ack.headers.set_single("Max-Forwards", "70")
    for route in dialog.route_set:
        ack.headers.append("Route", route)
    return ack


def adopt_answer(dialog: Dialog, response: SipResponse) -> None:
    """Take the remote target (Contact) and route set (Record-Route, reversed: RFC 3261 §12.1.2) from a 2xx
    to our INVITE. aiosipua keeps the To URI as target and no routes, so the ACK and BYE of a call through
    a record-routing proxy went nowhere."""
    tag = response.to_addr.tag if response.to_addr else None
    if tag and not dialog.remote_tag:
        dialog.remote_tag = tag
    contacts = response.contact
    if contacts:
        dialog.remote_target = stringify_uri(contacts[0].uri)
    dialog.route_set = list(reversed(response.headers.get("record-route")))
