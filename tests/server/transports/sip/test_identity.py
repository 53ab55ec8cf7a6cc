"""Caller identity from the INVITE (unit tests): P-Asserted-Identity only when trusted."""

from __future__ import annotations

from aiosipua import SipMessage, SipRequest

from server.transports.sip.identity import callee_identity, caller_identity


def invite(from_header: str, extra: str = "") -> SipRequest:
    text = (
        "INVITE sip:+4930555@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\n"
        f"From: {from_header};tag=1\r\nTo: <sip:+4930555@10.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = SipMessage.parse(text)
    assert isinstance(message, SipRequest)
    return message


def test_from_and_asserted_identity() -> None:
    request = invite(
        '"Ada L." <sip:anonymous@pbx>', 'P-Asserted-Identity: "Ada Lovelace" <sip:+44 20-7946-0000@pbx>\r\n'
    )
    trusted = caller_identity(request, ("10.0.0.2", 5060), trust_asserted=True)
    assert (trusted.number, trusted.display_name, trusted.asserted) == ("+442079460000", "Ada Lovelace", True)
    assert trusted.called == "+4930555" and trusted.remote_addr == ("10.0.0.2", 5060)
    untrusted = caller_identity(request, ("10.0.0.2", 5060), trust_asserted=False)
    assert (untrusted.user, untrusted.number, untrusted.display_name) == ("anonymous", None, "Ada L.")


def test_tel_style_user_and_callee() -> None:
    identity = caller_identity(invite("<sip:+1-555-1234@gw;user=phone>"), ("1.2.3.4", 5), trust_asserted=True)
    assert identity.number == "+15551234"
    assert callee_identity("sip:bob@127.0.0.1:5070", ("127.0.0.1", 5070)).user == "bob"
