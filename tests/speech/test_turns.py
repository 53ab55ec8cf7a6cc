from __future__ import annotations

from speech.config import VADConfig
from speech.turns import EndOfTurnDetector, TurnEnd, TurnStart
from speech.vad import CHUNK_SECONDS, VadChunk


def run(pattern: str, config: VADConfig | None = None) -> list[object]:
    """'#' = voiced 32 ms chunk, '.' = silent chunk."""
    det = EndOfTurnDetector(config or VADConfig())
    events: list[object] = []
    for i, c in enumerate(pattern):
        events += det.update(VadChunk(i * CHUNK_SECONDS, 0.9 if c == "#" else 0.05))
    return events


def test_turn_start_and_end_times() -> None:
    events = run("." * 10 + "#" * 20 + "." * 20)
    assert len(events) == 2
    start, end = events
    assert isinstance(start, TurnStart) and abs(start.t - 10 * CHUNK_SECONDS) < 1e-9
    assert abs(start.confirmed_t - (10 + 8) * CHUNK_SECONDS) < 1e-9  # 250 ms -> 8 chunks
    assert isinstance(end, TurnEnd) and abs(end.t - 30 * CHUNK_SECONDS) < 1e-9
    assert abs(end.detected_t - end.t - 13 * CHUNK_SECONDS) < 1e-9  # 400 ms -> 13 chunks


def test_click_shorter_than_min_speech_is_ignored() -> None:
    assert run("." * 5 + "##" + "." * 30) == []


def test_click_before_speech_does_not_move_the_onset() -> None:
    events = run("." * 5 + "##" + "." * 10 + "#" * 15 + "." * 20)
    assert isinstance(events[0], TurnStart) and abs(events[0].t - 17 * CHUNK_SECONDS) < 1e-9


def test_short_pause_inside_a_turn_does_not_end_it() -> None:
    events = run("#" * 10 + "." * 8 + "#" * 10 + "." * 20)
    assert [type(e) for e in events] == [TurnStart, TurnEnd]


def test_end_of_turn_silence_is_configurable() -> None:
    events = run("#" * 10 + "." * 8 + "#" * 10 + "." * 20, VADConfig(end_of_turn_silence_ms=200))
    assert [type(e) for e in events] == [TurnStart, TurnEnd, TurnStart, TurnEnd]


def test_required_silence_applies_to_the_current_pause_only() -> None:
    """The listener shortens or lengthens one pause (adaptive end of turn); the next pause starts afresh."""
    det = EndOfTurnDetector(VADConfig(), end_silence=0.6)
    events: list[object] = []
    chunks = "#" * 10 + "." * 5 + "#" * 10 + "." * 40
    for i, c in enumerate(chunks):
        if i == 12:
            det.require_silence(5.0)  # the words said "and...": wait long in this pause
        if i == 28:
            det.require_silence(0.2)  # the words said "?": end soon, although 3 chunks already passed
        events += det.update(VadChunk(i * CHUNK_SECONDS, 0.9 if c == "#" else 0.05))
    assert [type(e) for e in events] == [TurnStart, TurnEnd]
    end = events[1]
    assert isinstance(end, TurnEnd) and abs(end.t - 25 * CHUNK_SECONDS) < 1e-9
    assert abs(end.detected_t - end.t - 7 * CHUNK_SECONDS) < 1e-9  # 0.2 s -> 7 chunks, not the 0.6 s default
