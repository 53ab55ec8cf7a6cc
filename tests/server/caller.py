"""A scripted WebRTC caller (aiortc) for tests and ``bench/voice_latency.py``.

It places a real call over loopback: sends speech through Opus like a browser does, receives the agent's
audio, and timestamps both on the shared monotonic clock so voice-to-voice latency can be measured from the
caller's side: last speech sample handed to the encoder -> first voiced reply frame decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from server.transports.webrtc.tracks import PacedAudioTrack, set_audio_receive_buffer, to_mono_int16
from speech.frames import AudioFrame
from speech.resample import Resampler

RATE = 48_000
FRAME = RATE // 50
VOICE_RMS = 300.0  # int16 RMS above which a received 20 ms frame counts as agent speech
# The call-token secret of test servers that know their callers (server.call_tokens.secret).
TEST_CALL_SECRET = "test-call-token-secret-0123456789abcdef"


def mint_call_token(
    user_id: str, tenant: str = "default", secret: str = TEST_CALL_SECRET, ttl_s: int = 3600, **claims: Any
) -> str:
    """A call token for ``user_id``, signed the way an integrator's backend does it (README.md, Security):
    PyJWT, HS256, the server's default issuer and audience. ``claims`` override or add claims."""
    import jwt

    now = int(time.time())
    payload = {
        "sub": user_id,
        "tenant": tenant,
        "iss": "voice-agent",
        "aud": "voice-agent-call",
        "iat": now,
        "exp": now + ttl_s,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


async def real_offer() -> str:
    """The SDP offer of a real aiortc peer with one audio track (the peer is closed again)."""
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


class RTCCaller:
    def __init__(
        self,
        base_url: str,
        *,
        user_id: str | None = None,
        token: str | None = None,
        receive_buffer_frames: int | None = None,
    ) -> None:
        """``receive_buffer_frames``: depth of the buffer the agent's audio waits in before it counts as
        heard; None keeps aiortc's (4 frames, 80 ms), which is deeper than a browser's adaptive buffer on a
        clean loopback (Chromium reports 20-40 ms of jitter-buffer delay there).

        ``user_id`` without ``token``: a token for that user signed with ``TEST_CALL_SECRET`` (the server
        must be configured with it). Neither: an anonymous call, whose own token the server hands back."""
        self.base_url = base_url.rstrip("/")
        self.receive_buffer_frames = receive_buffer_frames
        self.user_id = user_id
        self.token = token or (mint_call_token(user_id) if user_id else None)
        self.events_ticket = ""
        self.pc = RTCPeerConnection()
        self.track = PacedAudioTrack(self._next_frame, RATE)
        self.call_id = ""
        self.events: list[dict[str, Any]] = []
        self.received: list[tuple[float, float, np.ndarray]] = []  # (arrival, rms, mono 48 kHz pcm)
        self._pending = np.zeros(0, np.int16)
        self._sent_all = asyncio.Event()
        self._sent_at = 0.0
        self._starting = False
        self.said_from = 0.0  # monotonic time the first sample of the last ``say()`` went to the encoder
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: aiohttp.ClientSession | None = None

    async def connect(self) -> str:
        self.pc.addTrack(self.track)
        self.pc.on("track", lambda track: self._tasks.append(asyncio.create_task(self._receive(track))))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._http = aiohttp.ClientSession()
        body: dict[str, Any] = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        url = f"{self.base_url}/api/calls/offer"
        async with self._http.post(url, json=body, headers=self.headers) as resp:
            answer = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"offer rejected ({resp.status}): {answer}")
        self.token = answer.get("call_token", self.token)  # anonymous: the call's own token
        self.events_ticket = answer["events_ticket"]
        self.call_id = answer["call_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        if self.receive_buffer_frames is not None:
            set_audio_receive_buffer(self.pc, self.receive_buffer_frames)
        self._tasks.append(asyncio.create_task(self._follow_events()))
        return self.call_id

    async def say(self, pcm48k: np.ndarray) -> float:
        """Send speech (48 kHz int16, trimmed); returns the monotonic time its last sample was sent."""
        self._sent_all.clear()
        self._pending = pcm48k.astype(np.int16)
        self._starting = True
        await self._sent_all.wait()
        return self._sent_at

    async def reply_start(self, after: float, timeout: float = 30.0) -> float:
        """Arrival time of the first voiced frame received after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            voiced = [a for a, rms, _ in self.received if a > after and rms > VOICE_RMS]
            if voiced:
                return voiced[0]
            await asyncio.sleep(0.01)
        raise TimeoutError(f"no reply audio within {timeout:.0f} s")

    async def wait_quiet(self, silence_s: float = 1.0, timeout: float = 60.0) -> None:
        """Wait until no voiced audio arrived for ``silence_s`` (receiving must have started)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            voiced = [a for a, rms, _ in self.received if rms > VOICE_RMS]
            last = voiced[-1] if voiced else (self.received[0][0] if self.received else None)
            if last is not None and time.monotonic() - last >= silence_s:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError(f"the agent did not go quiet within {timeout:.0f} s")

    def silence_heard_from(self, after: float, hold_s: float = 0.1, window_s: float = 0.0025) -> float:
        """When the caller starts hearing a silence of at least ``hold_s``, after ``after``.

        A received frame starts playing when the receive buffer releases it (its arrival time here), so its
        sample n is heard ``n / RATE`` later; scanning 2.5 ms windows instead of whole 20 ms frames places
        the cut where it is in the audio, not at the next frame boundary.
        """
        frames = [(a, pcm) for a, _, pcm in self.received if a >= after]
        win = max(1, int(window_s * RATE))
        times: list[float] = []
        loud: list[bool] = []
        for arrival, pcm in frames:
            for start in range(0, len(pcm) - win + 1, win):
                chunk = pcm[start : start + win].astype(np.float64)
                times.append(arrival + start / RATE)
                loud.append(float(np.sqrt(np.mean(chunk**2))) > VOICE_RMS)
        need = max(1, round(hold_s / window_s))
        run = 0
        for i, is_loud in enumerate(loud):
            run = 0 if is_loud else run + 1
            if run >= need:
                return times[i - need + 1]
        raise AssertionError("the agent never went quiet")

    def audio_since(self, t: float) -> np.ndarray:
        chunks = [pcm for a, _, pcm in self.received if a >= t - 0.02]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def record(self) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.get(f"{self.base_url}/api/calls/{self.call_id}", headers=self.headers) as resp:
            return await resp.json()

    async def hangup(self) -> None:
        if self._http is not None and self.call_id:
            url = f"{self.base_url}/api/calls/{self.call_id}/hangup"
            with contextlib.suppress(aiohttp.ClientError):
                async with self._http.post(url, headers=self.headers) as resp:
                    await resp.read()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.track.stop()
        await self.pc.close()
        if self._http is not None:
            await self._http.close()

    def _next_frame(self) -> AudioFrame:
        if len(self._pending) == 0:
            return AudioFrame(np.zeros(FRAME, np.int16), RATE)
        chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
        if self._starting:  # stamped when sent, not computed back from the end: pacing may lag under load
            self._starting = False
            self.said_from = time.monotonic()
        if len(self._pending) == 0:
            self._sent_at = time.monotonic() + len(chunk) / RATE  # the chunk's last sample
            self._sent_all.set()
        return AudioFrame(chunk, RATE)

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = to_mono_int16(frame)
            rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0
            self.received.append((time.monotonic(), rms, pcm))

    async def _follow_events(self) -> None:
        assert self._http is not None
        url = f"{self.base_url}/api/calls/{self.call_id}/events?ticket={self.events_ticket}"
        async with self._http.ws_connect(url) as ws:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.events.append(json.loads(msg.data))


async def synthesize_speech(text: str, voice: Any = None) -> np.ndarray:
    """``text`` spoken by the Piper voice (espeak-ng if Piper is missing), as trimmed 48 kHz int16.
    ``voice``: a ``speech.config.TTSConfig`` to speak with instead (no fallback), e.g. another rate."""
    from speech.config import TTSConfig
    from speech.tts.registry import create_tts

    if voice is not None:
        frames = [f async for f in create_tts(voice).synthesize(text)]
    else:
        try:
            frames = [f async for f in create_tts(TTSConfig(backend="piper")).synthesize(text)]
        except Exception:  # noqa: BLE001 - Piper missing or failing: espeak-ng is the fallback voice
            frames = [f async for f in create_tts(TTSConfig(backend="espeak")).synthesize(text)]
    rate = frames[0].sample_rate
    pcm = np.concatenate([f.pcm for f in frames])
    resampler = Resampler(rate, RATE)
    out = np.concatenate([resampler.process(AudioFrame(pcm, rate)).pcm, resampler.flush().pcm])
    return trim_silence(out)


def trim_silence(pcm: np.ndarray, threshold: float = 200.0) -> np.ndarray:
    frames = len(pcm) // FRAME
    rms = np.sqrt(np.mean(pcm[: frames * FRAME].reshape(frames, FRAME).astype(np.float64) ** 2, axis=1))
    voiced = np.nonzero(rms > threshold)[0]
    if len(voiced) == 0:
        return pcm
    return pcm[voiced[0] * FRAME : (voiced[-1] + 1) * FRAME]


def write_wav(
    path: Path, pcm: np.ndarray, rate: int = RATE, lead_silence_s: float = 0.0, tail_silence_s: float = 0.0
) -> Path:
    import wave

    pad = lambda s: np.zeros(int(s * rate), np.int16)
    data = np.concatenate([pad(lead_silence_s), pcm.astype(np.int16), pad(tail_silence_s)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_recall(expected: str, got: str) -> float:
    """Fraction of ``expected``'s words that occur in ``got`` (order-free, for noisy ASR)."""
    want, have = words(expected), set(words(got))
    return sum(w in have for w in want) / max(1, len(want))


async def transcribe(pcm48k: np.ndarray) -> str:
    """Whisper (the server's STT backend) on 48 kHz int16 audio; the last 30 s window only."""
    from speech.config import STTConfig
    from speech.stt.registry import create_stt

    resampler = Resampler(RATE, 16_000)
    pcm16 = np.concatenate(
        [resampler.process(AudioFrame(pcm48k.astype(np.int16), RATE)).pcm, resampler.flush().pcm]
    )
    result = await create_stt(STTConfig()).transcribe(pcm16[: 30 * 16_000].astype(np.float32) / 32768.0)
    return result.text if result is not None else ""


async def media_url(server: Any, token: str | None = None) -> str:
    """What a telephony gateway's backend does before streaming to ``server`` (an aiohttp ``TestServer``):
    POST for a single-use ticket (with the caller's call token; none in anonymous mode), then connect to the
    WebSocket URL it names."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = server.make_url("/api/media/tickets")
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        path = (await resp.json())["url"]
    return str(server.make_url(path)).replace("http://", "ws://")


class ServerProcess:
    """``voice-agent serve`` in a child process on a free loopback port; stopped by its own pid.

    Its callers are known: ``server.call_tokens.secret`` is ``TEST_CALL_SECRET`` unless ``env`` sets
    ``VOICE_AGENT__SERVER__CALL_TOKENS__SECRET`` ("" for anonymous calls)."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, log_level: str = "INFO") -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.log_path = self.workdir / "server.log"
        self.log_level = log_level
        self.proc: Any = None

    def start(self, timeout: float = 180.0) -> ServerProcess:
        import os
        import subprocess
        import sys
        import urllib.error
        import urllib.request

        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "VOICE_AGENT__SERVER__PORT": str(self.port),
            "VOICE_AGENT__SERVER__HOST": "127.0.0.1",
            "VOICE_AGENT__STORAGE__RECORDS": str(self.workdir / "calls.sqlite3"),
            "VOICE_AGENT__SERVER__RAG": "false",
            "VOICE_AGENT__AGENT__MEMORY_PATH": str(self.workdir / "memory.sqlite3"),
            # Its own scheduler and ledgers too: the defaults are relative to the repository, so a follow-up a
            # previous run scheduled for "bench-0" would be spoken in this run's call of "bench-0".
            "VOICE_AGENT__SCHEDULER__JOBSTORE_URL": f"sqlite:///{self.workdir / 'jobs.sqlite3'}",
            "VOICE_AGENT__STORAGE__DELIVERY_LEDGER": str(self.workdir / "proactive_ledger.sqlite3"),
            "VOICE_AGENT__STORAGE__PHONE_DIRECTORY": str(self.workdir / "phone_directory.sqlite3"),
            "VOICE_AGENT__SERVER__CALL_TOKENS__SECRET": TEST_CALL_SECRET,
            **self.env,
        }
        repo = Path(__file__).resolve().parents[2]
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "--log-level", self.log_level, "serve"],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except urllib.error.HTTPError as error:
                with contextlib.suppress(ValueError):
                    if json.loads(error.read() or b"{}").get("status") == "full":
                        return self  # up, with every line taken (max_calls 0: a node that refuses calls)
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout:.0f} s; log:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
