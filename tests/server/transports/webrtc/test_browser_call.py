"""A real browser call: headless Chromium with a fake microphone speaking a question, on the call page.

Checks, end to end: the server's final transcript is the question, the page shows the agent's reply text,
and the audio the page received (recorded in the page) transcribes to words of that reply. The server knows
its callers (a call-token secret): the page gets its token in the URL's fragment, which never reaches the
server; TURN credentials are ephemeral (coturn ``use-auth-secret``), handed to token holders only.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import json
import urllib.request
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.coturn import TurnRestServer
from tests.server.caller import (
    RATE,
    ServerProcess,
    mint_call_token,
    synthesize_speech,
    transcribe,
    word_recall,
    words,
    write_wav,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "What is the capital of France?"


BROWSER_USER = "browser-user"


def page_url(base_url: str, query: str = "") -> str:
    """The call page with the browser user's token in the fragment (what an integrator's page would do)."""
    return f"{base_url}/{query}#token={mint_call_token(BROWSER_USER)}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, turn_rest_server: TurnRestServer
) -> Iterator[ServerProcess]:
    env = {
        "VOICE_AGENT__AGENT__FIRST_TOKEN_TIMEOUT_S": "20",
        "VOICE_AGENT__SERVER__TURN__URLS": json.dumps([turn_rest_server.url]),
        "VOICE_AGENT__SERVER__TURN__SECRET": turn_rest_server.secret,
    }
    proc = ServerProcess(tmp_path_factory.mktemp("browser-server"), env)
    proc.start()
    yield proc
    proc.stop()


def _run(coro: Any) -> Any:
    """Run a coroutine on a fresh loop in another thread (sync Playwright owns this thread's loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _get(url: str, user: str = BROWSER_USER) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {mint_call_token(user)}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def _wav_to_pcm(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16), w.getframerate()


def _call(browser: Any, base_url: str, console: list[str]) -> tuple[str, list[str], list[str], str]:
    page = browser.new_page()  # the page runs under the server's CSP: predicates are functions, never eval'd
    page.on("console", lambda m: console.append(m.text))
    page.goto(page_url(base_url))
    assert "#token" not in page.url  # the page took the token out of the address bar
    page.click("#call")
    page.wait_for_function("() => window.__callId !== undefined", timeout=30_000)
    call_id = page.evaluate("window.__callId")
    try:
        page.wait_for_function(
            "() => window.__callEvents.some(e => e.type === 'turn')", timeout=120_000, polling=200
        )
        page.wait_for_function(
            "() => { const s = window.__callEvents.filter(e => e.type === 'state'); "
            "return s.length && s[s.length - 1].state === 'listening'; }",
            timeout=60_000,
            polling=200,
        )
        page.wait_for_timeout(1500)  # the last reply frames are still in the page's jitter buffer
        agent_lines = page.locator("#transcript li.agent").all_inner_texts()
        user_lines = page.locator("#transcript li.user").all_inner_texts()
        recorded = page.evaluate("window.__getRecordedAudio()")
    finally:
        page.click("#hangup")
    return call_id, agent_lines, user_lines, recorded


def test_browser_call_hears_the_answer(server: ServerProcess, chromium: Any, tmp_path: Path) -> None:
    question = _run(synthesize_speech(QUESTION))
    # Silence first so the greeting plays undisturbed; a long tail because Chromium loops the file.
    mic = write_wav(tmp_path / "question.wav", question, RATE, lead_silence_s=6.0, tail_silence_s=90.0)
    console: list[str] = []
    with chromium.launch(mic) as browser:
        call_id, agent_lines, user_lines, recorded = _call(browser, server.base_url, console)
    assert recorded, f"the page recorded no audio; console: {console[-10:]}"
    assert_heard_the_answer(server.base_url, call_id, agent_lines, user_lines, recorded, "Chromium")
    log = server.log_path.read_text()
    assert "ticket=[redacted]" in log and "eyJ" not in log  # no call token or ticket (JWTs) in the log


def test_without_a_token_the_page_cannot_call(server: ServerProcess, chromium: Any, tmp_path: Path) -> None:
    mic = write_wav(tmp_path / "silence.wav", np.zeros(RATE, np.int16), RATE)
    with chromium.launch(mic) as browser:
        page = browser.new_page()
        page.goto(server.base_url + "/")
        page.click("#call")
        page.wait_for_function("() => document.getElementById('error').textContent !== ''", timeout=30_000)
        error = page.evaluate("document.getElementById('error').textContent")
        assert "call token missing" in error and page.evaluate("window.__callId") is None


def assert_heard_the_answer(
    base_url: str, call_id: str, agent_lines: list[str], user_lines: list[str], recorded: str, browser: str
) -> None:
    """The server heard the question, the page shows the reply, and the page's recording says it."""
    record = _get(f"{base_url}/api/calls/{call_id}")
    assert record["user_id"] == BROWSER_USER  # the user of the token, nothing the page chose
    turn = record["turns"][0]
    assert word_recall(QUESTION, turn["user_text"]) >= 0.8, turn
    assert user_lines and word_recall(QUESTION, user_lines[0]) >= 0.8, user_lines
    reply = turn["agent_text"]
    assert any(words(reply) == words(line) for line in agent_lines), (agent_lines, reply)

    pcm, rate = _wav_to_pcm(base64.b64decode(recorded))
    assert rate in (44_100, 48_000) and len(pcm) > rate, (rate, len(pcm))
    if rate != RATE:
        from speech.frames import AudioFrame
        from speech.resample import Resampler

        r = Resampler(rate, RATE)
        pcm = np.concatenate([r.process(AudioFrame(pcm, rate)).pcm, r.flush().pcm])
    heard = _run(transcribe(pcm[-30 * RATE :]))
    reply_words = set(words(reply))
    heard_reply = [w for w in words(heard) if w in reply_words]
    print(f"\n{browser} heard {heard!r}; agent said {reply!r}; latency {turn['stages']}")
    assert len(heard_reply) >= min(3, len(reply_words)), f"{browser} heard {heard!r}; agent said {reply!r}"


def test_call_through_turn_relay(server: ServerProcess, chromium: Any, tmp_path: Path) -> None:
    """With the page forced to relay-only ICE, the call connects through coturn and the greeting is heard."""
    mic = write_wav(tmp_path / "silence.wav", np.zeros(RATE, np.int16), RATE, tail_silence_s=30.0)
    with chromium.launch(mic) as browser:
        page = browser.new_page()
        page.goto(page_url(server.base_url, "?relay=1"))
        assert_ephemeral_turn_credentials(server.base_url)
        page.click("#call")
        page.wait_for_function("() => window.__localCandidateType !== undefined", timeout=60_000, polling=200)
        candidate = page.evaluate("window.__localCandidateType")
        page.wait_for_function(
            "() => window.__callEvents.filter(e => e.type === 'state' && e.state === 'listening').length > 0",
            timeout=60_000,
            polling=200,
        )
        page.wait_for_timeout(1000)
        recorded = page.evaluate("window.__getRecordedAudio()")
        page.click("#hangup")
    assert_relayed_greeting_heard(candidate, recorded)


def assert_ephemeral_turn_credentials(base_url: str) -> None:
    """The page's TURN server comes with credentials made for its user, expiring within the hour."""
    import time

    (turn,) = [
        s for s in _get(f"{base_url}/api/calls/config")["iceServers"] if s["urls"][0].startswith("turn:")
    ]
    expiry, user = turn["username"].split(":", 1)
    assert user == BROWSER_USER and time.time() < int(expiry) <= time.time() + 3600


def assert_relayed_greeting_heard(candidate: str, recorded: str) -> None:
    """The nominated local candidate is a TURN relay, and the page recorded the greeting through it."""
    assert candidate == "relay"
    pcm, _rate = _wav_to_pcm(base64.b64decode(recorded))
    assert float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 100, (
        "no greeting audio came through the relay"
    )
