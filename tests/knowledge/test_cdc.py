"""Change events from the ``knowledge_changes`` topic: schema validation and application."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from knowledge.knowledge_base import KnowledgeBase
from knowledge.sources.cdc import ChangeEventHandler, InvalidChangeEvent, parse_change_event
from messaging.bus import PoisonMessage
from tests.knowledge.test_parsing_chunking import minimal_pdf


def test_valid_event_parses_with_cdc_source() -> None:
    event = parse_change_event(
        json.dumps({"op": "upsert", "doc_id": "faq-1", "content": "Hello", "version": 7})
    )
    assert (event.op, event.doc_id, event.source, event.version, event.payload()) == (
        "upsert",
        "faq-1",
        "cdc",
        7,
        b"Hello",
    )


def test_producers_reference_shape_is_accepted() -> None:
    # The older shape of messaging.schemas.KnowledgeChange: text, uri, string version, ts, nulls.
    body = {
        "op": "upsert",
        "doc_id": "kb-1",
        "source": None,
        "title": "T",
        "text": "Body",
        "uri": "s3://b/k",
        "version": "42",
        "ts": 1.5,
    }
    event = parse_change_event(json.dumps(body))
    assert (event.content, event.version, event.source, event.uri) == ("Body", 42, "cdc", "s3://b/k")
    event = parse_change_event(json.dumps({"op": "delete", "doc_id": "kb-1", "version": None, "ts": 2.0}))
    assert event.version == 2_000_000_000


async def test_handler_raises_invalid_events_as_the_bus_poison_exception() -> None:
    class NoSubmit:
        async def submit(self, event: object) -> None:
            raise AssertionError("must not be called")

    handler = ChangeEventHandler(NoSubmit())
    with pytest.raises(PoisonMessage, match="op: Input should be"):
        await handler(SimpleNamespace(body=b'{"op": "merge", "doc_id": "x", "content": "a"}'))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"doc_id": "x", "content": "a"}).encode(), "op: Field required"),
        (
            json.dumps({"op": "merge", "doc_id": "x", "content": "a"}).encode(),
            "op: Input should be 'upsert' or 'delete'",
        ),
        (json.dumps({"op": "upsert", "doc_id": "", "content": "a"}).encode(), "doc_id"),
        (json.dumps({"op": "upsert", "doc_id": "x"}).encode(), "exactly one of content"),
        (
            json.dumps({"op": "upsert", "doc_id": "x", "content": "a", "content_base64": "YQ=="}).encode(),
            "exactly one",
        ),
        (json.dumps({"op": "delete", "doc_id": "x", "content": "a"}).encode(), "delete carries no content"),
        (json.dumps({"op": "upsert", "doc_id": "x", "content_base64": "***"}).encode(), "base64"),
        (json.dumps({"op": "upsert", "doc_id": "x", "content": "a", "version": -1}).encode(), "version"),
        (
            json.dumps({"op": "upsert", "doc_id": "x", "content": "a", "colour": "red"}).encode(),
            "colour: Extra inputs",
        ),
        (
            json.dumps({"op": "upsert", "doc_id": "x", "path": "/etc/passwd"}).encode(),
            "'path' is not allowed",
        ),
        (
            json.dumps({"op": "upsert", "doc_id": "x", "content": "a", "schema_version": 2}).encode(),
            "schema_version",
        ),
        (json.dumps({"op": "upsert", "doc_id": "x", "text": "a", "content": "b"}).encode(), "not both"),
        (
            json.dumps({"op": "upsert", "doc_id": "x", "content": "a", "version": "v2"}).encode(),
            "string of digits",
        ),
        (json.dumps({"op": "upsert", "doc_id": "x", "uri": "s3://b/k"}).encode(), "'uri' alone"),
    ],
)
def test_bad_schema_raises_invalid_change_event_with_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidChangeEvent) as info:
        parse_change_event(body)
    assert reason in info.value.reason
    assert info.value.permanent and isinstance(info.value, ValueError)


async def test_handler_applies_upserts_and_deletes(kb: KnowledgeBase) -> None:
    handler = ChangeEventHandler(kb.ingestor)
    pdf = base64.b64encode(minimal_pdf("Quarterly report about lighthouses.")).decode()
    await handler(
        SimpleNamespace(
            body=json.dumps(
                {
                    "op": "upsert",
                    "doc_id": "report",
                    "content_base64": pdf,
                    "content_type": "application/pdf",
                    "tags": ["finance"],
                    "version": 10,
                }
            ).encode()
        )
    )
    await kb.ingestor.wait_idle()
    hits = await kb.retriever.retrieve("lighthouses", filters={"source": "cdc", "tags": ["finance"]})
    assert [h.doc_id for h in hits] == ["report"]
    await handler(
        SimpleNamespace(body=b'{"op": "delete", "doc_id": "report", "version": 9}')
    )  # older: ignored
    await kb.ingestor.wait_idle()
    assert await kb.ingestor.status("report") is not None
    await handler(SimpleNamespace(body=b'{"op": "delete", "doc_id": "report", "version": 11}'))
    await kb.ingestor.wait_idle()
    assert await kb.ingestor.status("report") is None
    with pytest.raises(InvalidChangeEvent):
        await handler(SimpleNamespace(body=b'{"op": "upsert"}'))
