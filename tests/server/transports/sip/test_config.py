"""The ``sip`` section (unit tests): safe defaults, and invalid values named clearly."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from pydantic import ValidationError

from server.transports.sip import SipConfig, SipTrunkConfig
from server.transports.sip.admission import PeerFilter


def test_defaults_listen_and_accept_on_loopback_only() -> None:
    config = SipConfig()
    assert not config.enabled and config.listen_host == "127.0.0.1" and config.codecs == ["PCMU", "PCMA"]
    peers = PeerFilter(config)
    assert peers.allows("127.0.0.1") and peers.allows("::1")
    assert not peers.allows("192.0.2.10") and not peers.allows("not-an-address")
    assert ip_address("127.9.9.9") in config.allowed_peers[0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"codecs": ["PCMU", "PCMU"]}, "codec twice"),
        ({"codecs": ["G729"]}, "PCMU"),
        ({"rtp_port_min": 20000}, "both be set"),
        ({"rtp_port_min": 30000, "rtp_port_max": 20000}, "must not exceed"),
        ({"allowed_peers": ["300.1.1.1/8"]}, "allowed_peers"),
        ({"trunk": {"uri": "pbx.example.com"}}, "sip:host"),
        ({"trunk": {"uri": "sip:pbx.example.com"}}, "needs trunk.username"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_invalid_settings_are_named(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as invalid:
        SipConfig(**settings)  # type: ignore[arg-type]
    assert message in str(invalid.value)


def test_a_trunk_without_registration_needs_no_account() -> None:
    trunk = SipTrunkConfig(uri="sip:pbx.example.com:5080", registration=False)
    assert trunk.password is None
    assert "secret" not in repr(SipTrunkConfig(uri="sip:pbx", username="a", password="secret"))
