"""The browser call in Firefox (Debian's firefox-esr over WebDriver BiDi): same checks as the Chromium test.

Firefox's fake microphone plays a tone, not speech, so a preload script (run before the page's own scripts)
gives the page the test's microphone: its ``getUserMedia`` returns a stream that plays the question WAV
through Web Audio. Everything after that is Firefox's own WebRTC stack (SDP, ICE, DTLS, Opus) against the
aiortc server, and the page is driven with real mouse clicks under Firefox's default autoplay policy.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.firefox import Firefox, FirefoxError, Tab
from tests.server.caller import (
    RATE,
    ServerProcess,
    synthesize_speech,
    write_wav,
)
from tests.server.transports.webrtc.test_browser_call import (
    QUESTION,
    _run,
    assert_ephemeral_turn_credentials,
    assert_heard_the_answer,
    assert_relayed_greeting_heard,
    page_url,
    server,  # noqa: F401 - the same call server, one per module
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The test's microphone, replacing getUserMedia: a stream playing `leadSeconds` of silence, the WAV, then
# silence for as long as the call lasts.
MICROPHONE_PLAYING_WAV = """(wavBase64, leadSeconds) => {
  if (!navigator.mediaDevices) return;  // the tab's first, blank document: not a secure context
  navigator.mediaDevices.getUserMedia = async () => {
    const ctx = new AudioContext();
    const wav = Uint8Array.from(atob(wavBase64), (c) => c.charCodeAt(0));
    const speech = await ctx.decodeAudioData(wav.buffer);
    const microphone = ctx.createMediaStreamDestination();
    const player = ctx.createBufferSource();
    player.buffer = speech;
    player.connect(microphone);
    player.start(ctx.currentTime + leadSeconds);
    window.__microphonePlayingWav = { ctx, speechSeconds: speech.duration };
    return microphone.stream;
  };
}"""


def microphone_playing(wav: Path, lead_silence_s: float) -> str:
    """The test's microphone: a preload script (BiDi ``functionDeclaration``) making getUserMedia play ``wav``."""
    wav_base64 = base64.b64encode(wav.read_bytes()).decode()
    return f"() => ({MICROPHONE_PLAYING_WAV})({json.dumps(wav_base64)}, {lead_silence_s})"


def _wait(tab: Tab, expression: str, timeout: float) -> None:
    try:
        tab.wait_for(expression, timeout=timeout)
    except FirefoxError as exc:
        error = tab.evaluate("document.getElementById('error').textContent")
        raise AssertionError(f"{exc}; page error: {error!r}") from None


def _lines(tab: Tab, role: str) -> list[str]:
    return list(
        tab.evaluate(f"[...document.querySelectorAll('#transcript li.{role}')].map(li => li.innerText)")
    )


def _call(tab: Tab, base_url: str) -> tuple[str, list[str], list[str], str]:
    tab.navigate(page_url(base_url))
    tab.click("#call")
    _wait(tab, "window.__callId !== undefined", timeout=30)
    call_id = str(tab.evaluate("window.__callId"))
    try:
        _wait(tab, "window.__callEvents.some(e => e.type === 'turn')", timeout=120)
        _wait(
            tab,
            "(() => { const s = window.__callEvents.filter(e => e.type === 'state'); "
            "return s.length && s[s.length - 1].state === 'listening'; })()",
            timeout=60,
        )
        time.sleep(1.5)  # the last reply frames are still in the page's jitter buffer
        agent_lines, user_lines = _lines(tab, "agent"), _lines(tab, "user")
        recorded = tab.evaluate("window.__getRecordedAudio()")
    finally:
        tab.click("#hangup")
    return call_id, agent_lines, user_lines, recorded


def test_firefox_call_hears_the_answer(server: ServerProcess, firefox: Firefox, tmp_path: Path) -> None:  # noqa: F811
    question = _run(synthesize_speech(QUESTION))
    wav = write_wav(tmp_path / "question.wav", question, RATE)
    with firefox.tab() as tab:
        # Silence first so the greeting plays undisturbed (as in the Chromium test).
        tab.add_preload_script(microphone_playing(wav, lead_silence_s=6.0))
        call_id, agent_lines, user_lines, recorded = _call(tab, server.base_url)
        console = tab.console
    assert recorded, f"the page recorded no audio; console: {console[-10:]}"
    assert_heard_the_answer(server.base_url, call_id, agent_lines, user_lines, recorded, "Firefox")


def test_firefox_call_through_turn_relay(server: ServerProcess, firefox: Firefox, tmp_path: Path) -> None:  # noqa: F811
    """With the page forced to relay-only ICE, Firefox connects through coturn and the greeting is heard."""
    silence = write_wav(tmp_path / "silence.wav", np.zeros(RATE, np.int16), RATE)
    with firefox.tab() as tab:
        tab.add_preload_script(microphone_playing(silence, lead_silence_s=0.0))
        tab.navigate(page_url(server.base_url, "?relay=1"))
        assert_ephemeral_turn_credentials(server.base_url)
        tab.click("#call")
        _wait(tab, "window.__localCandidateType !== undefined", timeout=60)
        candidate = tab.evaluate("window.__localCandidateType")
        _wait(tab, "window.__callEvents.some(e => e.type === 'state' && e.state === 'listening')", timeout=60)
        time.sleep(1.0)
        recorded = tab.evaluate("window.__getRecordedAudio()")
        tab.click("#hangup")
    assert_relayed_greeting_heard(candidate, recorded)
