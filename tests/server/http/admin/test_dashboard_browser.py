"""The dashboard in headless Chromium against a real admin API (scheduler + embedded bus in a thread).

The page is served with the node's security headers (Content-Security-Policy: scripts and styles from the
server only), so a script or style the CSP blocks shows up here as a page error. Signs in with the token
(typed, or from the URL's fragment), creates a campaign, pauses it, sends a prompt now and checks what the
page shows and what reached the bus. With a real knowledge base (embedded store in a tmp dir, MiniLM
embeddings) it uploads, lists and deletes documents through the page and checks what became searchable; it
opens a recorded call and reads, per reply, how it was produced and the document sentences behind it; and it
runs an evaluation from an uploaded question file and reads its progress, scores and failures.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.evaluation import EvaluationTarget
from agent.llm.registry import create_llm
from knowledge.config import KnowledgeConfig
from knowledge.knowledge_base import KnowledgeBase
from messaging.bus import Message
from messaging.embedded import EmbeddedBus
from scheduler.config import SchedulerConfig
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService
from server.calls.admission import CallAdmission
from server.http.admin import AdminDeps, admin_routes, dashboard_routes
from server.http.admin.evaluations import EvaluationJobs
from server.http.app import knowledge_routes
from server.http.guards import Security
from server.node import conversation_factory
from server.security.browser import security_headers
from server.settings import Settings
from server.storage.call_records import open_call_record_store
from server.storage.delivery_ledger import open_delivery_ledger
from tests.fixtures.knowledge import SHOP_FAQ, SHOP_QUESTIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "dash-token"


class DashboardServer:
    """Admin API + dashboard on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, db_path: Path, knowledge: KnowledgeConfig | None = None) -> None:
        self.db_path = db_path
        self.knowledge = knowledge
        self.kb: KnowledgeBase | None = None
        self.new_conversation: Any = None  # the node's conversation factory, when a knowledge base runs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.received: list[Message] = []
        self.port = 0

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=20)

    async def _start(self) -> None:
        self.bus = EmbeddedBus()

        async def collect(message: Message) -> None:
            self.received.append(message)

        self.bus.subscribe("voice_proactive", "test-rtc", collect)
        await self.bus.start()
        config = SchedulerConfig(jobstore_url=f"sqlite:///{self.db_path}")
        self.ledger = open_delivery_ledger(self.db_path.with_suffix(".ledger.sqlite3"))
        self.service = SchedulerService(config, BusPromptPublisher(self.bus, "voice_proactive"), self.ledger)
        await self.service.start()
        self.records = open_call_record_store(self.db_path.with_suffix(".calls.sqlite3"))
        settings = Settings()
        settings.server.admin_token = TOKEN
        settings.agent.memory_path = str(self.db_path.with_suffix(".memory.sqlite3"))
        security = Security.from_settings(settings)
        app = web.Application(middlewares=[security_headers])
        self.load = CallAdmission(max_calls=3)  # the node's lines: one taken, one caller refused
        self.load.try_admit("c1", "webrtc")
        self.load.max_calls = 1
        self.load.try_admit("c2", "sip")
        self.load.max_calls = 3
        evaluations = None
        if self.knowledge is not None:
            self.kb = KnowledgeBase(self.knowledge)
            await self.kb.start()
            await self.kb.ingestor.wait_idle()
            app.add_routes(knowledge_routes(self.kb, security))
            llm = await asyncio.to_thread(create_llm, settings.agent.llm)
            self.new_conversation = conversation_factory(
                settings, llm, self.kb.retriever, None, self.kb.embedder
            )
            target = EvaluationTarget.of_calls(self.new_conversation, self.kb.retriever, settings.agent)
            evaluations = EvaluationJobs(target)
        self.evaluations = evaluations
        deps = AdminDeps.from_scheduler(
            self.service,
            TOKEN,
            load=self.load,
            records=self.records,
            evaluations=evaluations,
            guard=security.admins,
        )
        app.add_routes(admin_routes(deps))
        app.add_routes(dashboard_routes())
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        async def _stop() -> None:
            await self.runner.cleanup()
            if self.evaluations is not None:
                await self.evaluations.close()
            self.records.close()
            if self.kb is not None:
                await self.kb.close()
            await self.service.stop()
            await self.bus.close()
            self.ledger.close()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def retrieve(self, query: str) -> list[Any]:
        assert self.kb is not None
        future = asyncio.run_coroutine_threadsafe(self.kb.retriever.retrieve(query, k=3), self.loop)
        return list(future.result(timeout=30))

    def get_json(self, path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    server = DashboardServer(tmp_path / "dash.sqlite3")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def knowledge_dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    server = DashboardServer(
        tmp_path / "dash.sqlite3", KnowledgeConfig(embedded_path=str(tmp_path / "knowledge.sqlite3"))
    )
    server.start()
    yield server
    server.stop()


def _sign_in(page: Any, port: int) -> None:
    page.goto(f"http://127.0.0.1:{port}/admin/")
    page.fill("#token", TOKEN)
    page.click("#login-form button")
    page.wait_for_selector("#app:not([hidden])")


def _signed_in_page(browser: Any, port: int) -> tuple[Any, list[str]]:
    """A page signed in to the dashboard, and the list its script errors are collected in."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, port)
    return page, errors


def test_dashboard_login_campaign_and_send_now(dashboard: DashboardServer, chromium: Any) -> None:
    with chromium.launch() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"http://127.0.0.1:{dashboard.port}/admin/")

        page.fill("#token", "wrong")
        page.click("#login-form button")
        page.wait_for_selector("#login-error:has-text('Wrong token')")

        page.fill("#token", TOKEN)
        page.click("#login-form button")
        page.wait_for_selector("#app:not([hidden])")
        assert "does not expose live calls" in page.inner_text("#calls")
        page.wait_for_selector("#calls-load:has-text('lines in use: 1 of 3')")
        assert "1 callers refused" in page.inner_text("#calls-load")
        page.wait_for_selector("#latency-note:has-text('placeholder')")
        page.wait_for_selector("#knowledge-note:has-text('does not expose the knowledge document API')")
        assert page.locator("#knowledge-form").is_hidden()

        form = "#campaign-form"
        page.fill(f"{form} [name=name]", "Renewal reminder")
        page.fill(f"{form} [name=audience]", "alice, bob")
        page.fill(f"{form} [name=content]", "Your plan renews tomorrow.")
        page.select_option(f"{form} [name=schedule_kind]", "cron")
        page.fill(f"{form} [name=cron]", "0 9 * * MON-FRI")
        page.fill(f"{form} [name=timezone]", "Europe/Paris")
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector("#campaigns tr:has-text('Renewal reminder')")
        row = page.locator("#campaigns tr", has_text="Renewal reminder")
        assert "active" in row.inner_text() and "alice, bob" in row.inner_text()

        row.get_by_role("button", name="Pause").click()
        page.wait_for_selector("#campaigns tr:has-text('paused')")
        row.get_by_role("button", name="Delivery").click()
        page.wait_for_selector("#deliveries-panel:not([hidden])")

        page.select_option(f"{form} [name=schedule_kind]", "cron")
        page.fill(f"{form} [name=cron]", "every day")
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector("#app-error:has-text('invalid cron')")

        page.fill("#send-form [name=user_id]", "carol")
        page.fill("#send-form [name=text]", "Your order has shipped.")
        page.click("#send-form button")
        page.wait_for_selector("#send-result:has-text('published')")
        body = json.loads(dashboard.received[-1].body)
        assert (body["user_id"], body["text"]) == ("carol", "Your order has shipped.")
        assert errors == []


def test_dashboard_uploads_lists_and_deletes_knowledge_documents(
    knowledge_dashboard: DashboardServer, chromium: Any, tmp_path: Path
) -> None:
    server = knowledge_dashboard
    markdown = tmp_path / "clinic-hours.md"
    markdown.write_text("# Opening hours\n\nThe Lyon clinic opens at 7:45 am on Saturdays.\n")
    title = "<img src=x onerror=alert(1)> Clinic hours"  # must show as text, never as markup
    with chromium.launch() as browser:
        page, errors = _signed_in_page(browser, server.port)
        page.wait_for_selector("#knowledge-note:has-text('No documents yet')")

        page.set_input_files("#knowledge-file", str(markdown))
        page.fill("#knowledge-form [name=title]", title)
        page.click("#knowledge-form button[type=submit]")
        page.wait_for_selector("#knowledge-result:has-text('is ready')", timeout=60_000)
        row = page.locator("#knowledge-docs tr", has_text="Clinic hours")
        assert row.locator("td.status-ready").inner_text() == "ready"
        assert title in row.inner_text() and "upload" in row.inner_text()
        assert page.locator("#knowledge-docs img").count() == 0
        doc_id = row.get_attribute("data-doc-id")
        assert doc_id and int(row.locator("td").nth(3).inner_text()) >= 1

        hits = server.retrieve("when does the Lyon clinic open on Saturday")
        assert hits and "7:45 am" in hits[0].text

        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Delete").click()
        page.wait_for_selector("#knowledge-note:has-text('No documents yet')", timeout=30_000)
        assert page.locator("#knowledge-docs tr").count() == 0
        assert server.get_json(f"/api/knowledge/documents/{doc_id}")[0] == 404
        assert server.get_json("/api/knowledge/documents") == (200, {"documents": []})
        assert not any("7:45" in hit.text for hit in server.retrieve("Lyon clinic Saturday opening"))

        # refused by the API (415): the page says why and lists nothing
        page.set_input_files(
            "#knowledge-file",
            files=[{"name": "photo.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n"}],
        )
        page.click("#knowledge-form button[type=submit]")
        page.wait_for_selector("#knowledge-error:has-text('photo.png')")
        assert "is not accepted" in page.inner_text("#knowledge-error")

        # accepted but unparseable: listed as failed with the reason
        page.set_input_files(
            "#knowledge-file", files=[{"name": "blank.md", "mimeType": "text/markdown", "buffer": b"\n \n"}]
        )
        page.click("#knowledge-form button[type=submit]")
        page.wait_for_selector("#knowledge-result.error:has-text('failed')", timeout=30_000)
        assert page.inner_text("#knowledge-error") == ""
        failed = page.locator("#knowledge-docs tr", has_text="blank.md")
        assert "failed: " in failed.inner_text() and "no text" in failed.inner_text()
        assert errors == []


@pytest.fixture
def shop_dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    """The dashboard over a knowledge base holding the repair-shop FAQ (ingested from a watched folder)."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "faq.md").write_bytes(SHOP_FAQ.read_bytes())
    knowledge = KnowledgeConfig(embedded_path=str(tmp_path / "knowledge.sqlite3"), watch_dir=str(inbox))
    server = DashboardServer(tmp_path / "dash.sqlite3", knowledge)
    server.start()
    yield server
    server.stop()


async def _recorded_call(server: DashboardServer) -> Any:
    """A call whose three replies were produced by real conversations over the knowledge base: an extractive
    answer, a refusal, and (in verified mode, with a model double that invents a price: a fault a real model
    makes but not on demand) a rejected model sentence replaced by the evidence."""
    from server.calls.record import CallRecord, RecordedTurn
    from tests.agent.fakes import FakeLLM

    questions = [
        "How much is a battery replacement?",
        "Do you sell gift cards?",
        "How much is a charging port repair?",
    ]
    extractive = server.new_conversation(None, None)
    turns = []
    for question in questions[:2]:
        reply = "".join([piece async for piece in extractive.respond(question)])
        turns.append((question, reply, extractive.last_turn.grounding()))
    verified_settings = Settings()
    verified_settings.agent.grounding.answer_mode = "verified"
    assert server.kb is not None
    verified = conversation_factory(
        verified_settings,
        FakeLLM(["A charging port repair costs $49."]),
        server.kb.retriever,
        None,
        server.kb.embedder,
    )(None, None)
    reply = "".join([piece async for piece in verified.respond(questions[2])])
    turns.append((questions[2], reply, verified.last_turn.grounding()))
    record = CallRecord("call-evidence-1", "node-1", "dora")
    for index, (question, reply, grounding) in enumerate(turns):
        record.add_user(question)
        record.add_agent(reply)
        record.turns.append(RecordedTurn(index, question, reply, grounding=grounding))
    record.ended_at, record.end_reason = record.started_at + 60, "hangup"
    await server.records.save(record)
    return record


def test_call_view_shows_each_reply_with_its_evidence(shop_dashboard: DashboardServer, chromium: Any) -> None:
    server = shop_dashboard
    record = server.run(_recorded_call(server))
    assert [t.grounding["produced_by"] for t in record.turns] == ["extractive", "refused", "extractive"]
    with chromium.launch() as browser:
        page, errors = _signed_in_page(browser, server.port)
        row = page.locator("#records tr", has_text="dora")
        row.wait_for()
        assert "3" in row.inner_text() and "hangup" in row.inner_text()
        row.get_by_role("button", name="View").click()
        page.wait_for_selector("#call-view:not([hidden])")
        assert "call-evidence-1" in page.inner_text("#call-view-title")

        first, second, third = (page.locator(f"#call-turns .turn[data-turn='{i}']") for i in range(3))
        assert "caller: How much is a battery replacement?" in first.inner_text()
        assert first.locator(".produced").inner_text() == "extractive"
        evidence = first.locator("ul.evidence li").all_inner_texts()
        assert any("file:faq.md" in e and "battery replacement costs $69" in e for e in evidence), evidence
        assert "confidence 0." in first.inner_text()

        assert second.locator(".produced").inner_text() == "refused"
        assert second.locator("ul.evidence").count() == 0

        assert third.locator(".produced").inner_text() == "extractive"
        rejected = third.locator("ul.rejected li").all_inner_texts()
        assert rejected and "$49" in rejected[0] and "not in the evidence" in rejected[0], rejected
        assert (
            "59" in third.locator(".turn-agent").inner_text()
            and "49" not in third.locator(".turn-agent").inner_text()
        )
        assert errors == []


def test_evaluation_from_the_knowledge_section(shop_dashboard: DashboardServer, chromium: Any) -> None:
    with chromium.launch() as browser:
        page, errors = _signed_in_page(browser, shop_dashboard.port)
        page.wait_for_selector("#knowledge-docs tr:has-text('faq.md')")

        # a broken file: refused with the reason, nothing runs
        page.set_input_files(
            "#eval-file", files=[{"name": "broken.yaml", "mimeType": "text/yaml", "buffer": b"questions: ["}]
        )
        page.click("#eval-form button[type=submit]")
        page.wait_for_selector("#eval-error:has-text('not valid YAML')")
        assert page.locator("#eval-scores").is_hidden()

        page.set_input_files(
            "#eval-file",
            files=[{"name": "mine.yaml", "mimeType": "text/yaml", "buffer": SHOP_QUESTIONS.encode()}],
        )
        page.click("#eval-form button[type=submit]")
        page.wait_for_selector("#eval-progress:has-text('done, 5 / 5 questions')", timeout=120_000)
        assert page.inner_text("#eval-error") == ""
        score = page.locator("#eval-scores-body tr[data-score='answer_accuracy'] td").nth(1)
        assert score.inner_text() == "0.667"
        refusals = page.locator("#eval-scores-body tr[data-score='unanswerable_refusal_rate'] td").nth(1)
        assert refusals.inner_text() == "1"
        invented = page.locator("#eval-scores-body tr[data-score='invented_fact_rate'] td").nth(1)
        assert invented.inner_text() == "0"
        (failure,) = page.locator("#eval-failures tr").all()
        cells = failure.locator("td").all_inner_texts()
        assert cells[0] == "How much is a charging port repair?" and cells[1] == "79"
        assert "59 dollars" in cells[2] and "fact missing" in cells[3] and "file:faq.md" in cells[4], cells
        assert errors == []


def test_dashboard_signs_in_with_the_token_in_the_fragment(dashboard: DashboardServer, chromium: Any) -> None:
    """The link the server prints when it generated its token: the page keeps the token in sessionStorage and
    takes it out of the address bar; the fragment never reaches the server."""
    with chromium.launch() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"http://127.0.0.1:{dashboard.port}/admin/#token={TOKEN}")
        page.wait_for_selector("#app:not([hidden])")
        assert "#token" not in page.url and page.evaluate("sessionStorage.length") == 1
        csp = page.evaluate("fetch('/admin/').then(r => r.headers.get('content-security-policy'))")
        assert "script-src 'self'" in csp
    assert not [e for e in errors if "Content Security Policy" in e], errors
