"""Call tokens and tickets: what is accepted, what is refused and why (PyJWT, real signatures)."""

from __future__ import annotations

import pytest

from server.calls.identity import CallIdentity
from server.security.call_tokens import CallTokenError, CallTokens
from server.security.config import CallTokenConfig
from tests.server.caller import TEST_CALL_SECRET, mint_call_token


class Clock:
    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tokens(clock: Clock | None = None, **config: object) -> CallTokens:
    return CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET, **config), clock=clock or Clock())  # type: ignore[arg-type]


def test_an_integrators_token_gives_its_user_and_tenant() -> None:
    identity = CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET)).verify(mint_call_token("ann", "acme"))
    assert identity == CallIdentity("ann", "acme", anonymous=False)


def test_a_token_without_tenant_is_of_the_default_tenant() -> None:
    token = mint_call_token("ann", tenant="ignored", tenant_claim_removed=True)
    import jwt

    claims = jwt.decode(token, TEST_CALL_SECRET, algorithms=["HS256"], audience="voice-agent-call")
    del claims["tenant"], claims["tenant_claim_removed"]
    bare = jwt.encode(claims, TEST_CALL_SECRET, algorithm="HS256")
    assert CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET)).verify(bare).tenant == "default"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (mint_call_token("ann", secret="another-secret-0123456789-0123456789"), "Signature"),
        (mint_call_token("ann", aud="someone-else"), "(?i)audience"),
        (mint_call_token("ann", iss="someone-else"), "(?i)issuer"),
        (mint_call_token("ann", iat=4_000_000_000), "future"),
        (mint_call_token("ann", ttl_s=-120), "expired"),
        (mint_call_token("ann", ttl_s=2 * 86_400), "at most"),
        (mint_call_token("bad user id"), "sub"),
        (mint_call_token("ann", tenant="../other"), "tenant"),
        ("not.a.jwt", "refused"),
        ("", "missing"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    with pytest.raises(CallTokenError, match=reason):
        CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET)).verify(token)


def test_none_algorithm_is_refused() -> None:
    import jwt

    unsigned = jwt.encode({"sub": "ann", "aud": "voice-agent-call", "iss": "voice-agent", "iat": 1, "exp": 4e9},
                          None, algorithm="none")  # fmt: skip
    with pytest.raises(CallTokenError):
        CallTokens(CallTokenConfig(secret=TEST_CALL_SECRET)).verify(unsigned)


def test_issued_tokens_round_trip_and_expire() -> None:
    clock = Clock()
    issuer = tokens(clock, leeway_s=0)
    issued = issuer.issue("ann", "acme", ttl_s=60)
    assert issuer.verify(issued.token) == CallIdentity("ann", "acme")
    assert issued.expires_at == clock.now + 60
    clock.now += 61
    with pytest.raises(CallTokenError, match="expired"):
        issuer.verify(issued.token)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        CallTokens(CallTokenConfig(secret="short"))


def test_anonymous_mode_signs_with_a_key_of_this_process_only() -> None:
    node_a, node_b = CallTokens(CallTokenConfig()), CallTokens(CallTokenConfig())
    assert node_a.anonymous
    issued = node_a.issue_anonymous(600)
    assert issued.identity.anonymous and issued.identity.user_id.startswith("anon-")
    assert node_a.verify(issued.token) == issued.identity
    with pytest.raises(CallTokenError):
        node_b.verify(issued.token)
    assert node_a.issue_anonymous(600).identity.user_id != issued.identity.user_id  # fresh per call


def test_tickets_are_single_use_for_one_purpose_and_call() -> None:
    clock = Clock()
    issuer = tokens(clock)
    ann = CallIdentity("ann", "acme")
    ticket = issuer.issue_ticket(ann, "call-events", "call-1")
    with pytest.raises(CallTokenError, match="another call"):
        issuer.redeem_ticket(ticket, "call-events", "call-2")
    with pytest.raises(CallTokenError):
        issuer.redeem_ticket(ticket, "media-stream")
    with pytest.raises(CallTokenError):
        issuer.verify(ticket)  # a ticket is not a call token
    assert issuer.redeem_ticket(ticket, "call-events", "call-1") == ann
    with pytest.raises(CallTokenError, match="already used"):
        issuer.redeem_ticket(ticket, "call-events", "call-1")
    late = issuer.issue_ticket(ann, "call-events", "call-1")
    clock.now += 30 + 30 + 1  # ticket_ttl_s + leeway
    with pytest.raises(CallTokenError, match="expired"):
        issuer.redeem_ticket(late, "call-events", "call-1")
    with pytest.raises(CallTokenError):
        issuer.redeem_ticket(mint_call_token("ann"), "call-events", "call-1")  # a call token is not a ticket
