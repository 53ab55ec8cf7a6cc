"""HTTP upload routes on a real aiohttp server on loopback; freshness from upload to search."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from knowledge.knowledge_base import KnowledgeBase
from knowledge.sources.upload import upload_routes


@pytest.fixture
async def client(kb: KnowledgeBase) -> AsyncIterator[TestClient]:
    kb.config.max_upload_bytes = 64 * 1024
    app = web.Application()
    app.add_routes(upload_routes(kb.ingestor, kb.config))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


def form(name: str, data: bytes, content_type: str = "text/plain", **fields: str) -> aiohttp.FormData:
    f = aiohttp.FormData()
    for k, v in fields.items():
        f.add_field(k, v)
    f.add_field("file", data, filename=name, content_type=content_type)
    return f


async def wait_searchable(
    kb: KnowledgeBase, phrase: str, present: bool = True, timeout: float = 5.0
) -> float:
    """Seconds until a full-text search for ``phrase`` finds (or stops finding) it; polls every 20 ms."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        hits = await kb.retriever.retrieve(phrase, k=5)
        if any(phrase in h.text for h in hits) == present:
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"{phrase!r} {'never became' if present else 'stayed'} searchable within {timeout}s")


async def test_upload_is_searchable_quickly_and_update_replaces_it(
    client: TestClient, kb: KnowledgeBase
) -> None:
    started = time.perf_counter()
    resp = await client.post(
        "/api/knowledge/documents",
        data=form(
            "policy.md",
            b"# Refunds\n\nRefunds are paid within five days; ask for the quokka desk.",
            "text/markdown",
            doc_id="policy",
            tags="faq,billing",
        ),
    )
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["doc_id"] == "policy" and body["status"] == "queued"
    await wait_searchable(kb, "quokka desk")
    fresh = time.perf_counter() - started
    print(f"\nfreshness ({type(kb.store).__name__}): upload -> searchable in {fresh:.3f} s")
    assert fresh < 2.0

    status = await (await client.get(body["status_url"])).json()
    assert status["status"] == "ready" and status["tags"] == ["faq", "billing"] and status["chunk_count"] == 1
    hits = await kb.retriever.retrieve("refund", filters={"tags": ["billing"]})
    assert (
        hits
        and hits[0].doc_id == "policy"
        and hits[0].source_id == "policy#0"
        and hits[0].heading == "Refunds"
    )

    resp = await client.post(
        "/api/knowledge/documents",
        data=form(
            "policy.md",
            b"# Refunds\n\nRefunds are paid within ten days at the wombat counter.",
            "text/markdown",
            doc_id="policy",
        ),
    )
    assert resp.status == 202
    await wait_searchable(kb, "wombat counter")
    await wait_searchable(kb, "quokka desk", present=False, timeout=0.5)
    assert all("quokka" not in h.text for h in await kb.retriever.retrieve("quokka desk", k=10))


async def test_over_limit_upload_is_413(client: TestClient, kb: KnowledgeBase) -> None:
    resp = await client.post(
        "/api/knowledge/documents", data=form("big.txt", b"x" * (kb.config.max_upload_bytes + 1))
    )
    assert resp.status == 413
    assert "limit" in (await resp.json())["error"]
    assert await kb.store.list_documents() == []


async def test_unsupported_type_is_415(client: TestClient) -> None:
    resp = await client.post("/api/knowledge/documents", data=form("photo.png", b"\x89PNG....", "image/png"))
    assert resp.status == 415
    assert "image/png" in (await resp.json())["error"]


async def test_doc_ids_with_slashes_and_spaces_round_trip(client: TestClient, kb: KnowledgeBase) -> None:
    resp = await client.post(
        "/api/knowledge/documents", data=form("n.txt", b"Notes about tapirs.", doc_id="team/notes 2024.txt")
    )
    url = (await resp.json())["status_url"]
    assert url == "/api/knowledge/documents/team%2Fnotes%202024.txt"
    await kb.ingestor.wait_idle()
    assert (await (await client.get(url)).json())["doc_id"] == "team/notes 2024.txt"
    assert (await client.delete(url)).status == 202


async def test_non_multipart_body_is_400(client: TestClient) -> None:
    resp = await client.post("/api/knowledge/documents", json={"content": "x"})
    assert resp.status == 400
    assert "multipart" in (await resp.json())["error"]


async def test_missing_file_part_is_400(client: TestClient) -> None:
    f = aiohttp.FormData()
    f.add_field("doc_id", "x")
    f.add_field("other", b"zz", filename="z.txt")
    f._is_multipart = True
    resp = await client.post("/api/knowledge/documents", data=f)
    assert resp.status == 400


async def test_list_status_and_delete(client: TestClient, kb: KnowledgeBase) -> None:
    resp = await client.post(
        "/api/knowledge/documents",
        data=form(
            "a.html",
            b"<html><body><h1>Parking</h1><p>Visitors park in lot capybara.</p></body></html>",
            "text/html",
            tenant="acme",
        ),
    )
    created = await resp.json()
    doc_id, url = created["doc_id"], created["status_url"]
    assert url == f"/api/knowledge/documents/{doc_id}?tenant=acme"  # ids are unique per tenant
    await kb.ingestor.wait_idle()
    listing = await (await client.get("/api/knowledge/documents", params={"tenant": "acme"})).json()
    assert [d["doc_id"] for d in listing["documents"]] == [doc_id]
    assert (await client.get("/api/knowledge/documents/unknown")).status == 404
    assert (await client.delete(f"/api/knowledge/documents/{doc_id}")).status == 404  # not in "default"
    resp = await client.delete(url)
    assert resp.status == 202
    await kb.ingestor.wait_idle()
    assert (await client.get(url)).status == 404
    assert await kb.retriever.retrieve("capybara") == []
    assert (await client.delete(url)).status == 404


async def test_broken_pdf_upload_reports_failed_status(client: TestClient, kb: KnowledgeBase) -> None:
    resp = await client.post(
        "/api/knowledge/documents", data=form("scan.pdf", b"%PDF-1.5 truncated", "application/pdf")
    )
    url = (await resp.json())["status_url"]
    await kb.ingestor.wait_idle()
    status = await (await client.get(url)).json()
    assert status["status"] == "failed" and "PDF" in status["error"]
