"""Where the transfer tool's target goes: a name or number through ``phone.transfer_uri`` or the trunk's
domain; a sip: URI only if it is the configured target; nothing a caller talks the model into."""

from __future__ import annotations

from server.phone.service import transfer_uri
from server.transports.sip import SipConfig, SipTrunkConfig


def test_names_and_numbers_go_through_the_template() -> None:
    uri = transfer_uri(SipConfig(), "support", "sip:{target}@pbx.example.com")
    assert uri("support") == "sip:support@pbx.example.com"
    assert uri("+15551230009") == "sip:+15551230009@pbx.example.com"


def test_without_a_template_the_trunk_domain_is_used_and_without_a_trunk_nothing() -> None:
    trunk = SipTrunkConfig(uri="sip:10.0.0.5:5060", domain="carrier.example", username="agent")
    assert transfer_uri(SipConfig(trunk=trunk), "support", None)("desk") == "sip:desk@carrier.example"
    assert transfer_uri(SipConfig(), "support", None)("desk") is None


def test_what_the_caller_talks_the_model_into_falls_back_to_the_configured_target() -> None:
    uri = transfer_uri(SipConfig(), "sip:desk@pbx.example.com", None)
    assert uri("sip:desk@pbx.example.com") == "sip:desk@pbx.example.com"
    assert uri("sip:premium@evil.example") == "sip:desk@pbx.example.com"
    uri = transfer_uri(SipConfig(), "support", "sip:{target}@pbx.example.com")
    assert uri("a human agent please") == "sip:support@pbx.example.com"
    assert uri("x@evil.example;transport=tcp") == "sip:support@pbx.example.com"
