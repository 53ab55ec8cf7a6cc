"""Inbound digest authentication (unit tests), checked against aiosipua's client-side answers."""

from __future__ import annotations

from aiosipua import SipDigestAuth, SipRequest, build_credentials, parse_auth, stringify_auth
from pydantic import SecretStr

from server.transports.sip.config import InboundAuthConfig
from server.transports.sip.digest import DigestAuthenticator

CONFIG = InboundAuthConfig(realm="agent.test", users={"alice": SecretStr("s3cret")}, nonce_ttl_s=60)


def signed(challenge: str, user: str, password: str, method: str = "INVITE") -> SipRequest:
    creds = build_credentials(
        SipDigestAuth(user, password), parse_auth(challenge), method, "sip:agent@127.0.0.1"
    )
    assert creds is not None
    request = SipRequest(method=method, uri="sip:agent@127.0.0.1")
    request.headers.set_single("Authorization", stringify_auth(creds))
    return request


def test_right_and_wrong_credentials() -> None:
    auth = DigestAuthenticator(CONFIG)
    challenge = auth.challenge()
    assert 'realm="agent.test"' in challenge and "qop" in challenge
    assert auth.check(signed(challenge, "alice", "s3cret")) == ("alice", False)
    assert auth.check(signed(challenge, "alice", "wrong")) == (None, False)
    assert auth.check(signed(challenge, "mallory", "s3cret")) == (None, False)
    assert auth.check(SipRequest(method="INVITE", uri="sip:x")) == (None, False)
    other_method = signed(challenge, "alice", "s3cret", method="REGISTER")
    other_method.method = "INVITE"  # a digest made for another method does not fit
    assert auth.check(other_method) == (None, False)


def test_expired_and_forged_nonces() -> None:
    now = [1000.0]
    auth = DigestAuthenticator(CONFIG, clock=lambda: now[0])
    challenge = auth.challenge()
    now[0] += 61
    assert auth.check(signed(challenge, "alice", "s3cret")) == (None, True)  # stale: re-challenge quietly
    assert "stale=true" in auth.challenge(stale=True)
    forged = challenge.replace('nonce="', 'nonce="9', 1)
    assert auth.check(signed(forged, "alice", "s3cret")) == (None, False)
    other = DigestAuthenticator(CONFIG, clock=lambda: now[0])  # another process, another secret
    assert other.check(signed(auth.challenge(), "alice", "s3cret")) == (None, False)
