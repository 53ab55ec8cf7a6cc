from __future__ import annotations

import numpy as np

from speech.frames import AudioFrame
from speech.playback import PlaybackController


def speech(seconds: float, rate: int, text: str) -> AudioFrame:
    return AudioFrame(np.full(int(seconds * rate), 1000, np.int16), rate, meta={"text": text})


def drain(pb: PlaybackController, n: int) -> list[AudioFrame]:
    return [pb.read_frame() for _ in range(n)]


def test_read_frame_always_returns_one_frame_of_silence_or_audio() -> None:
    pb = PlaybackController(48_000, frame_ms=20)
    assert pb.read_frame().pcm.shape == (960,) and not pb.read_frame().pcm.any()
    pb.enqueue(speech(0.05, 48_000, "hi"))  # 2.5 frames
    out = drain(pb, 4)
    assert all(f.pcm.shape == (960,) for f in out)
    assert [f.meta["speech"] for f in out] == [True, True, True, False]
    assert not pb.is_speaking


def test_tts_rate_is_resampled_to_output_rate_without_losing_audio() -> None:
    pb = PlaybackController(8_000, frame_ms=20)
    for _ in range(10):
        pb.enqueue(speech(0.1, 22_050, "one sentence"))  # 1 s at 22.05 kHz
    played = sum(int((f.pcm != 0).sum()) for f in drain(pb, 60))
    assert abs(played - 8_000) <= 20


def test_callbacks_first_audio_and_finished_with_text() -> None:
    seen: list[tuple[str, object]] = []
    pb = PlaybackController(
        16_000,
        on_first_audio=lambda t: seen.append(("first", t)),
        on_finished=lambda text: seen.append(("finished", text)),
    )
    pb.enqueue(speech(0.04, 16_000, "Hello there."))
    pb.enqueue(speech(0.04, 16_000, "Bye."))
    drain(pb, 6)
    assert [k for k, _ in seen] == ["first", "finished"]
    assert seen[1][1] == "Hello there. Bye."


def test_interrupt_clears_queue_at_once_and_returns_heard_text() -> None:
    interrupted: list[str] = []
    pb = PlaybackController(16_000, on_interrupted=interrupted.append)
    pb.enqueue(speech(0.2, 16_000, "First sentence here."))
    pb.enqueue(speech(0.4, 16_000, "one two three four five six seven eight"))
    drain(pb, 10 + 10)  # 0.2 s of the first, half of the second
    heard = pb.interrupt()
    assert heard == "First sentence here. one two three four"
    assert interrupted == [heard]
    assert not pb.has_audio and not pb.read_frame().pcm.any()


def test_late_frames_of_an_interrupted_reply_are_not_replayed() -> None:
    pb = PlaybackController(16_000)
    generation = pb.generation
    pb.enqueue(speech(0.2, 16_000, "a"), generation)
    pb.interrupt()
    assert pb.enqueue(speech(0.2, 16_000, "a"), generation) is False
    assert not pb.has_audio
    assert pb.enqueue(speech(0.2, 16_000, "b"), pb.generation) is True


def test_pause_keeps_audio_and_resume_continues() -> None:
    pb = PlaybackController(16_000)
    pb.enqueue(speech(0.1, 16_000, "x"))
    drain(pb, 2)
    pb.pause()
    assert not any(f.pcm.any() for f in drain(pb, 5)) and pb.has_audio and not pb.is_speaking
    pb.resume()
    assert sum(f.meta["speech"] for f in drain(pb, 5)) == 3
