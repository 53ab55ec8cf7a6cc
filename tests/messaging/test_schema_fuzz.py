"""Every bus schema's ``parse`` on hostile bodies (Hypothesis): it returns a model or raises
``PoisonMessage`` with a reason (which the bus dead-letters); any other exception would crash a consumer's
handler loop into endless redelivery."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging.bus import PoisonMessage
from messaging.schemas import ConversationEvent, KnowledgeChange, ProactivePrompt
from messaging.schemas.base import BusModel
from tests.fuzzing import json_values, mutated

VALID: dict[type[BusModel], dict[str, Any]] = {
    ProactivePrompt: {"schema_version": 1, "message_id": "m1", "idempotency_key": "k1", "user_id": "ann",
                      "text": "Your parcel is here.", "expires_at": time.time() + 30 * 86_400},
    ConversationEvent: {"schema_version": 1, "event": "final_turn", "call_id": "c1", "user_id": "ann",
                        "node_id": "n1", "text": "hello", "role": "user"},
    KnowledgeChange: {"schema_version": 1, "op": "upsert", "doc_id": "d1", "content": "Opening hours",
                      "tags": ["faq"], "version": 3},
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_poison(model: type[BusModel], body: bytes) -> None:
    try:
        parsed = model.parse(body)
    except PoisonMessage as exc:
        assert str(exc), "a dead letter needs a reason"
        return
    assert isinstance(parsed, model)
    model.parse(parsed.to_bytes())  # what it accepted survives a round trip


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
def test_valid_examples_parse(model: type[BusModel]) -> None:
    assert isinstance(model.parse(json.dumps(VALID[model]).encode()), model)


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
@FUZZ
@given(data=st.data())
def test_mutated_bodies_parse_or_are_poison(model: type[BusModel], data: st.DataObject) -> None:
    body = data.draw(mutated(VALID[model]) | json_values)
    _parse_or_poison(model, json.dumps(body).encode())


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes_are_poison(model: type[BusModel], body: bytes) -> None:
    _parse_or_poison(model, body)
