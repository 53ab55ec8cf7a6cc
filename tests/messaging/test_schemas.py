"""Bus message schemas: round trips, versions, and bad bytes becoming PoisonMessage with a reason."""

from __future__ import annotations

import pytest

from messaging.bus import PoisonMessage
from messaging.schemas import ConversationEvent, KnowledgeChange, ProactivePrompt


def test_round_trip() -> None:
    p = ProactivePrompt(
        idempotency_key="k", user_id="u", intent="follow_up", expires_at=None, campaign_id="c1"
    )
    assert ProactivePrompt.parse(p.to_bytes()) == p
    e = ConversationEvent(event="final_turn", call_id="c", user_id="u", node_id="n", text="hi", role="user")
    assert ConversationEvent.parse(e.to_bytes()) == e
    k = KnowledgeChange(op="delete", doc_id="d1")
    assert KnowledgeChange.parse(k.to_bytes()).schema_version == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\x00not json", "invalid ProactivePrompt"),
        (b"[]", "invalid ProactivePrompt"),
        (b'{"idempotency_key": "k", "user_id": "u"}', "needs text or intent"),
        (b'{"idempotency_key": "k", "user_id": "u", "text": "x", "schema_version": 7}', "schema_version 7"),
        (
            b'{"idempotency_key": "k", "user_id": "u", "text": "x", "created_at": 10, "expires_at": 5}',
            "before",
        ),
    ],
)
def test_bad_bytes_are_poison(body: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        ProactivePrompt.parse(body)
