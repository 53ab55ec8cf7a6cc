"""The call page in headless Chromium when the server is full: it says that all lines are busy and when to
try again, and leaves the page ready for another try. The server is a real node with ``max_calls: 0``
(every call refused, as when it is full or being drained)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.caller import ServerProcess, mint_call_token

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def full_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VOICE_AGENT__SERVER__MAX_CALLS": "0", "VOICE_AGENT__SERVER__BUSY_RETRY_AFTER_S": "9"}
    proc = ServerProcess(tmp_path_factory.mktemp("busy-server"), env)
    proc.start()
    yield proc
    proc.stop()


def test_the_call_page_says_all_lines_are_busy(chromium, full_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    with chromium.launch() as browser:
        page = browser.new_page()
        page.goto(f"{full_server.base_url}/#token={mint_call_token('bea')}")  # a known caller: admitted or not
        page.click("#call")
        page.wait_for_function("() => window.__callState === 'busy'", timeout=30_000)
        message = page.locator("#error").inner_text()
        assert "All lines are busy" in message and "9 seconds" in message, message
        assert page.locator("#call").is_enabled() and not page.locator("#hangup").is_enabled()
