"""SDP offer/answer (unit tests): the answer reuses the offer's telephone-event number, which aiosipua's
own negotiation does not."""

from __future__ import annotations

import pytest
from aiosipua import negotiate_sdp, parse_sdp

from server.transports.sip import sdp
from server.transports.sip.errors import SdpError


def offer(
    formats: str = "8 0 96", extra: str = "", direction: str = "sendrecv", host: str = "10.1.2.3"
) -> str:
    maps = {
        "0": "a=rtpmap:0 PCMU/8000",
        "8": "a=rtpmap:8 PCMA/8000",
        "96": "a=rtpmap:96 telephone-event/8000",
        "18": "a=rtpmap:18 G729/8000",
    }
    lines = "\r\n".join(maps[f] for f in formats.split() if f in maps)
    return (
        f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP {formats}\r\n{lines}\r\na={direction}\r\n{extra}"
    )


def answer(text: str, codecs: list[str] | None = None) -> tuple[str, sdp.MediaParams]:
    message, params = sdp.answer_offer(
        sdp.parse(text),
        local_ip="127.0.0.1",
        rtp_port=5000,
        codecs=codecs or ["PCMU", "PCMA"],
        session_id="7",
    )
    return sdp.serialize(message), params


def test_the_answer_names_the_offers_telephone_event_payload() -> None:
    body, params = answer(offer())
    assert "a=rtpmap:96 telephone-event/8000" in body and "101" not in body
    assert params.dtmf_payload_type == 96
    assert params.codec == "PCMA" and params.payload_type == 8  # the offerer's first choice we support
    assert params.remote_rtp == ("10.1.2.3", 4000) and not params.remote_holds


def test_aiosipua_alone_answers_101_the_defect_worked_around() -> None:
    answer_sdp, _ = negotiate_sdp(parse_sdp(offer()), local_ip="127.0.0.1", rtp_port=5000)
    assert (
        answer_sdp.audio is not None
        and "101" in answer_sdp.audio.formats
        and "96" not in answer_sdp.audio.formats
    )


def test_no_common_codec_secure_rtp_and_junk_are_refused() -> None:
    with pytest.raises(SdpError) as no_codec:
        answer(offer("18"))
    assert no_codec.value.status == 488
    with pytest.raises(SdpError):
        answer(offer("0").replace("RTP/AVP", "RTP/SAVP"))
    with pytest.raises(SdpError) as junk:
        sdp.parse("v=0\r\nm=audio port RTP/AVP 0\r\n")
    assert junk.value.status == 400
    with pytest.raises(SdpError):
        sdp.parse("v=0\r\ns=-\r\n")  # no audio
    with pytest.raises(SdpError) as named:  # every RTP packet would resolve the name on the event loop
        answer(offer(host="rtp.example.invalid"))
    assert named.value.status == 488


def test_codec_restriction_and_no_telephone_event() -> None:
    _, params = answer(offer("8 0"), codecs=["PCMU"])
    assert params.codec == "PCMU" and params.dtmf_payload_type is None


@pytest.mark.parametrize(
    ("direction", "host", "holds", "may_send"),
    [
        ("sendonly", "10.1.2.3", True, False),
        ("inactive", "10.1.2.3", True, False),
        ("recvonly", "10.1.2.3", False, True),
        ("sendrecv", "0.0.0.0", True, False),
    ],
)
def test_hold_detection(direction: str, host: str, holds: bool, may_send: bool) -> None:
    body, params = answer(offer(direction=direction, host=host))
    assert params.remote_holds is holds and params.we_may_send is may_send
    if direction == "sendonly":
        assert "a=recvonly" in body


def test_local_sdp_keeps_the_session_and_bumps_its_version() -> None:
    local = sdp.LocalSdp("192.0.2.9", 5000, "4242")
    first, _ = local.answer(sdp.parse(offer()), ["PCMU", "PCMA"])
    second, _ = local.answer(sdp.parse(offer(direction="sendonly")), ["PCMA"])
    assert (first.origin.session_id, first.origin.session_version) == ("4242", "1")
    assert (second.origin.session_id, second.origin.session_version) == ("4242", "2")
    assert second.connection is not None and second.connection.address == "192.0.2.9"


def test_offer_and_answer_reading() -> None:
    ours = sdp.serialize(sdp.build_offer(local_ip="127.0.0.1", rtp_port=6000, codecs=["PCMA", "PCMU"]))
    assert "m=audio 6000 RTP/AVP 8 0 101" in ours and "a=rtpmap:101 telephone-event/8000" in ours
    theirs = sdp.parse(offer("0 96").replace("c=IN IP4 10.1.2.3", "c=IN IP4 10.9.9.9"))
    params = sdp.read_answer(theirs, ["PCMA", "PCMU"])
    assert (params.codec, params.dtmf_payload_type, params.remote_rtp) == ("PCMU", 96, ("10.9.9.9", 4000))
    with pytest.raises(SdpError):
        sdp.read_answer(sdp.parse(offer("0")), ["PCMA"])
