"""The dashboard in headless Chromium against a real admin API (scheduler + embedded bus in a thread).

Signs in with the token, creates a campaign, pauses it, sends a prompt now and checks what the page shows
and what reached the bus.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from scheduler.config import SchedulerConfig
from scheduler.publishing import BusPromptPublisher
from scheduler.service import SchedulerService
from server.admin import AdminDeps, admin_routes, dashboard_routes
from server.bus.base import Message
from server.bus.embedded import EmbeddedBus

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOKEN = "dash-token"


class DashboardServer:
    """Admin API + dashboard on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
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
        self.service = SchedulerService(config, BusPromptPublisher(self.bus, "voice_proactive"))
        await self.service.start()
        app = web.Application()
        app.add_routes(admin_routes(AdminDeps.from_scheduler(self.service, TOKEN)))
        app.add_routes(dashboard_routes())
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        async def _stop() -> None:
            await self.runner.cleanup()
            await self.service.stop()
            await self.bus.close()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[DashboardServer]:
    server = DashboardServer(tmp_path / "dash.sqlite3")
    server.start()
    yield server
    server.stop()


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
        page.wait_for_selector("#latency-note:has-text('placeholder')")

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
