"""The knowledge document API mounted by the server is admin-only; with the token it ingests for real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from knowledge.knowledge_base import KnowledgeBase
from server.http.app import create_app, knowledge_routes
from server.http.guards import Security
from server.settings import load_settings
from tests.server.fakes import fake_deps

TOKEN = "s3cret-admin"


def _form(text: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode(), filename="hours.txt", content_type="text/plain")
    return form


async def test_upload_list_and_delete_need_the_admin_token(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            "VOICE_AGENT__SERVER__ADMIN_TOKEN": TOKEN,
            "VOICE_AGENT__KNOWLEDGE__EMBEDDED_PATH": str(tmp_path / "k.sqlite3"),
        }
    )
    security = Security.from_settings(settings)
    async with KnowledgeBase(settings.knowledge) as kb:
        app = create_app(
            settings,
            fake_deps(tmp_path, settings),
            extra_routes=knowledge_routes(kb, security),
            security=security,
        )
        async with TestClient(TestServer(app)) as client:
            url = "/api/knowledge/documents"
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                resp = await client.post(url, data=_form("The clinic opens at 8 am."), headers=headers)
                assert resp.status == 401, await resp.text()
                assert (await client.get(url, headers=headers)).status == 401
            assert await kb.store.list_documents() == []  # nothing was ingested by the refused requests

            auth = {"Authorization": f"Bearer {TOKEN}"}
            resp = await client.post(url, data=_form("The clinic opens at 8 am."), headers=auth)
            assert resp.status == 202, await resp.text()
            doc_id = (await resp.json())["doc_id"]
            for _ in range(100):
                hits = await kb.retriever.retrieve("when does the clinic open", k=1)
                if hits:
                    break
                await asyncio.sleep(0.05)
            assert hits and "8 am" in hits[0].text
            assert (await client.delete(f"{url}/{doc_id}")).status == 401
            assert (await client.delete(f"{url}/{doc_id}", headers=auth)).status in (200, 202, 204)
