"""The dashboard's phone panel in headless Chromium against a real node with SIP: add a directory entry,
"call this user now" (a real baresip phone answers), watch the live SIP call and the attempt's outcome,
remove the entry; a bad time zone is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.server.phone.conftest import ADMIN_TOKEN, NodeFactory
from tests.server.phone.test_outreach import silent_microphone

pytestmark = [pytest.mark.browser, pytest.mark.sip, pytest.mark.slow]


def drive_dashboard(base_url: str, phone_uri: str, chromium: Any) -> list[str]:
    errors: list[str] = []
    with chromium.launch() as browser:
        page = browser.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept("Your table for two is ready."))
        page.goto(f"{base_url}/admin/")
        page.fill("#token", ADMIN_TOKEN)
        page.click("#login-form button")
        page.wait_for_selector("#app:not([hidden])")
        page.wait_for_selector("#phone-attempts:has-text('No outbound calls yet')")

        form = "#directory-form"
        page.fill(f"{form} [name=number]", "+1 555 123 0020")
        page.fill(f"{form} [name=user_id]", "lena")
        page.fill(f"{form} [name=timezone]", "Atlantis/Central")
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector("#app-error:has-text('unknown time zone')")
        page.fill(f"{form} [name=timezone]", "Europe/Madrid")
        page.fill(f"{form} [name=sip_uri]", phone_uri)
        page.click(f"{form} button[type=submit]")
        page.wait_for_selector("#directory tr:has-text('+15551230020')")

        page.locator("#directory tr", has_text="lena").get_by_text("Call now").click()
        page.wait_for_selector("#calls .call:has-text('sip')", timeout=30_000)  # live, as a SIP call
        page.wait_for_selector("#phone-attempts tr:has-text('delivered')", timeout=40_000)
        row = page.locator("#phone-attempts tr", has_text="lena").inner_text()
        assert "answered" in row and "1" in row, row

        page.locator("#directory tr", has_text="lena").get_by_text("Remove").click()
        page.wait_for_selector("#directory:has-text('No phone numbers yet')")
    return errors


async def test_phone_panel_adds_calls_and_removes(phone_node: NodeFactory, baresip, chromium, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    phone = baresip.start("lena", silent_microphone(tmp_path, 60))
    node = await phone_node(directory=[])
    errors = await asyncio.to_thread(drive_dashboard, node.base_url, phone.uri, chromium)
    assert errors == []
    await phone.expect("CALL_ESTABLISHED")
    (summary,) = await node.deps.records.recent(1)
    assert summary["user_id"] == "lena"
