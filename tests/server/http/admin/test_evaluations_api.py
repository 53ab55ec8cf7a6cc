"""The dashboard's evaluation routes and call-record routes over real HTTP (aiohttp on loopback).

Evaluations run through the agent as a node builds it (``server.node.conversation_factory`` on the default
llama.cpp model, a real ``Conversation`` per question) over a real knowledge base (``shop_kb``: the repair
shop FAQ through a watched folder). Call records come from a real SQLite store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.evaluation import EvaluationTarget
from agent.llm.registry import create_llm
from server.calls.record import CallRecord, RecordedTurn
from server.http.admin import AdminDeps, admin_routes
from server.http.admin.evaluations import EvaluationJobs
from server.node import conversation_factory
from server.settings import Settings
from server.storage.call_records import open_call_record_store
from tests.fixtures.knowledge import SHOP_QUESTIONS

TOKEN = "eval-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class NoScheduler:
    """The evaluation and call-record routes need no scheduler; any other route would fail loudly."""

    conversation_log = None


def app_with(deps: AdminDeps) -> web.Application:
    app = web.Application()
    app.add_routes(admin_routes(deps))
    return app


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[Any]:
    store = open_call_record_store(tmp_path / "calls.sqlite3")
    yield store
    store.close()


@pytest.fixture
async def client(shop_kb: Any, records: Any, tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = Settings()
    settings.agent.memory_path = str(tmp_path / "memory.sqlite3")
    llm = await asyncio.to_thread(create_llm, settings.agent.llm)
    new_conversation = conversation_factory(settings, llm, shop_kb.retriever, None, shop_kb.embedder)
    jobs = EvaluationJobs(EvaluationTarget.of_calls(new_conversation, shop_kb.retriever, settings.agent))
    deps = AdminDeps.from_scheduler(NoScheduler(), TOKEN, records=records, evaluations=jobs)
    client = TestClient(TestServer(app_with(deps), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()
    await jobs.close()


def upload(name: str, text: str | bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", text.encode() if isinstance(text, str) else text, filename=name)
    return form


async def wait_done(client: TestClient, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    progress = []
    while time.monotonic() < deadline:
        response = await client.get(f"/api/admin/evaluations/{job_id}", headers=AUTH)
        assert response.status == 200
        job = await response.json()
        progress.append(job["done"])
        if job["status"] != "running":
            assert progress == sorted(progress)  # progress only moves forward
            return job  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"evaluation {job_id} still running after {timeout} s: {progress[-1]} done")


async def test_an_uploaded_file_runs_in_the_background_with_progress_scores_and_failures(
    client: TestClient,
) -> None:
    response = await client.post(
        "/api/admin/evaluations", data=upload("mine.yaml", SHOP_QUESTIONS), headers=AUTH
    )
    assert response.status == 202, await response.text()
    started = await response.json()
    assert (started["status"], started["total"], started["file_name"]) == ("running", 5, "mine.yaml")

    busy = await client.post(
        "/api/admin/evaluations", data=upload("again.yaml", SHOP_QUESTIONS), headers=AUTH
    )
    assert busy.status == 409 and "already running" in (await busy.json())["error"]

    job = await wait_done(client, started["job_id"])
    assert job["status"] == "done" and job["done"] == 5 and job["error"] is None
    scores = job["scores"]
    assert scores["answer_accuracy"] == round(2 / 3, 4) and scores["unanswerable_refusal_rate"] == 1.0
    assert scores["invented_fact_rate"] == 0.0 and scores["small_talk_refusal_rate"] == 0.0
    (failure,) = job["failures"]  # the question whose "accepted answer" is wrong
    assert failure["id"] == "wrong" and failure["expected"] == "79" and failure["why"] == "fact missing"
    assert "59 dollars" in failure["said"] and failure["produced_by"] == "extractive"
    assert any(e["doc_id"] == "file:faq.md" and "$59" in e["sentence"] for e in failure["evidence"])

    listed = await (await client.get("/api/admin/evaluations", headers=AUTH)).json()
    assert [j["job_id"] for j in listed["evaluations"]] == [started["job_id"]]
    assert "failures" not in listed["evaluations"][0]


async def test_a_csv_file_with_splits(client: TestClient) -> None:
    csv = (
        "id,ask,expect,refuse,split\n"
        "battery,How much is a new battery?,69 dollars|$69,,dev\n"
        "gift,Do you sell gift cards?,,yes,test\n"
    )
    response = await client.post("/api/admin/evaluations", data=upload("set.csv", csv), headers=AUTH)
    assert response.status == 202, await response.text()
    job = await wait_done(client, (await response.json())["job_id"])
    assert job["failures"] == [] and job["scores"]["questions"] == 2
    assert job["scores_by_split"]["dev"]["answer_accuracy"] == 1.0
    assert job["scores_by_split"]["test"]["unanswerable_refusal_rate"] == 1.0


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("broken.yaml", "questions: [", "not valid YAML"),
        ("notes.txt", "How much is a battery?", "unknown evaluation file type"),
        ("empty.csv", "id,ask\n", "has no questions"),
        ("latin1.csv", b"id,ask\nq,Caf\xe9?\n", "not UTF-8"),
        ("huge.yaml", "# " + "x" * 300_000, "larger than"),
    ],
)
async def test_unusable_files_are_refused_with_the_reason(
    client: TestClient, name: str, body: str | bytes, reason: str
) -> None:
    response = await client.post("/api/admin/evaluations", data=upload(name, body), headers=AUTH)
    assert response.status == 400
    assert reason in (await response.json())["error"]
    assert (await (await client.get("/api/admin/evaluations", headers=AUTH)).json())["evaluations"] == []


async def test_requests_that_are_not_an_upload(client: TestClient) -> None:
    as_json = await client.post("/api/admin/evaluations", json={"file": SHOP_QUESTIONS}, headers=AUTH)
    assert as_json.status == 400 and "multipart/form-data" in (await as_json.json())["error"]
    form = aiohttp.FormData()
    form.add_field("questions", SHOP_QUESTIONS.encode(), filename="q.yaml")
    wrong_field = await client.post("/api/admin/evaluations", data=form, headers=AUTH)
    assert wrong_field.status == 400 and "'file'" in (await wrong_field.json())["error"]
    missing = await client.get("/api/admin/evaluations/nope", headers=AUTH)
    assert missing.status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/admin/evaluations"),
        ("GET", "/api/admin/evaluations"),
        ("GET", "/api/admin/evaluations/x"),
        ("GET", "/api/admin/call-records"),
        ("GET", "/api/admin/call-records/x"),
    ],
)
async def test_every_route_needs_the_admin_token(client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await client.request(method, path, data=upload("q.yaml", SHOP_QUESTIONS), headers=headers)
        assert response.status == 401, path


async def test_without_a_knowledge_base_or_records_the_routes_say_why() -> None:
    deps = AdminDeps.from_scheduler(NoScheduler(), TOKEN)
    async with TestClient(TestServer(app_with(deps), host="127.0.0.1")) as client:
        response = await client.post(
            "/api/admin/evaluations", data=upload("q.yaml", SHOP_QUESTIONS), headers=AUTH
        )
        assert response.status == 404 and "knowledge base" in (await response.json())["error"]
        response = await client.get("/api/admin/call-records", headers=AUTH)
        assert response.status == 404 and "not available" in (await response.json())["error"]


async def test_call_records_list_and_one_call_with_its_grounding(client: TestClient, records: Any) -> None:
    grounding = {
        "produced_by": "extractive",
        "confidence": 0.7,
        "retrieval_queries": ["battery replacement price"],
        "evidence": [
            {"doc_id": "file:faq.md", "source_id": "file:faq.md#2", "sentence": "A battery...", "score": 1}
        ],
        "sentences": [],
        "rejected": [{"text": "It costs $49.", "unsupported": ["$49"]}],
    }
    record = CallRecord(
        "call-1", "node-1", "ana", turns=[RecordedTurn(0, "Battery?", "$69.", grounding=grounding)]
    )
    await records.save(record)
    listed = await (await client.get("/api/admin/call-records?user_id=ana", headers=AUTH)).json()
    assert [(c["call_id"], c["turns"], c["live"]) for c in listed["calls"]] == [("call-1", 1, False)]
    one = await (await client.get("/api/admin/call-records/call-1", headers=AUTH)).json()
    assert one["live"] is False and one["turns"][0]["grounding"] == grounding
    assert (await client.get("/api/admin/call-records/none", headers=AUTH)).status == 404
    assert (await client.get("/api/admin/call-records?limit=0", headers=AUTH)).status == 400
