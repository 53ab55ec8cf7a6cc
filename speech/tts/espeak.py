"""espeak-ng fallback: a formant synthesizer run as a subprocess, light enough for any machine.

``espeak-ng --stdout`` writes a WAV whose header carries a placeholder length, so the stream is parsed
incrementally: the header once, then PCM as it arrives, yielded in ~100 ms frames.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator

import numpy as np

from speech.config import TTSConfig
from speech.errors import BackendUnavailableError, SynthesisError
from speech.frames import AudioFrame
from speech.tts.silence import LeadingSilenceTrimmer

_READ_BYTES = 4410  # ~100 ms at 22 050 Hz


class EspeakTTS:
    """espeak-ng voice (``config.voice``, default ``en-us``). See ``TextToSpeech``."""

    sample_rate = 22_050  # what espeak-ng produces for every voice

    def __init__(self, config: TTSConfig) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise BackendUnavailableError(
                "TTS backend 'espeak' needs the espeak-ng program (apt-get install espeak-ng)"
            )
        self._binary = binary
        self._voice = config.voice or "en-us"
        self._words_per_minute = max(80, int(175 * config.speaker_rate))
        self._trim = config.trim_leading_silence

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        if not any(ch.isalnum() for ch in text):
            return  # nothing to pronounce (see TextToSpeech); espeak-ng would read emoji names aloud
        # Text goes through stdin so that text starting with '-' is never read as an option.
        proc = await asyncio.create_subprocess_exec(
            self._binary,
            "--stdout",
            "-v",
            self._voice,
            "-s",
            str(self._words_per_minute),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(text.encode())
            proc.stdin.close()
            rate = await _read_wav_header(proc.stdout)
            if rate != self.sample_rate:
                raise SynthesisError(f"espeak-ng produced {rate} Hz, expected {self.sample_rate} Hz")
            leftover = b""
            trimmer = LeadingSilenceTrimmer(rate) if self._trim else None
            while data := await proc.stdout.read(_READ_BYTES):
                data, leftover = leftover + data, b""
                if len(data) % 2:
                    data, leftover = data[:-1], data[-1:]
                pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
                pcm = trimmer.process(pcm) if trimmer is not None else pcm
                if len(pcm):
                    yield AudioFrame(pcm, rate, meta={"text": text})
            if trimmer is not None and len(rest := trimmer.flush()):
                yield AudioFrame(rest, rate, meta={"text": text})
            if await proc.wait() != 0:
                stderr = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                raise SynthesisError(f"espeak-ng failed for {text[:40]!r}: {stderr.strip()}")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _read_wav_header(stream: asyncio.StreamReader) -> int:
    """Consume RIFF header chunks up to the start of PCM data; return the sample rate."""
    riff = await stream.readexactly(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise SynthesisError("espeak-ng did not write a WAV stream")
    rate = 0
    while True:
        chunk_id, size = struct.unpack("<4sI", await stream.readexactly(8))
        if chunk_id == b"data":
            return rate
        body = await stream.readexactly(size)
        if chunk_id == b"fmt ":
            _fmt, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
            if channels != 1 or bits != 16:
                raise SynthesisError(
                    f"espeak-ng wrote {channels} channels of {bits} bits; expected mono 16-bit"
                )
