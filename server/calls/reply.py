"""``ReplyInFlight``: one agent reply being prepared or spoken, and what may hold its voice back.

A reply's audio reaches playback only while it is *committed* and not *held*:

- committed: a reply started on a ``speech.events.SpeculativeTranscript`` (the caller paused, the turn has
  not ended yet) prepares everything (retrieval, the model, the first chunk synthesized) but stays silent,
  and its live events wait, until the ``FinalTranscript`` with the same words commits it. When the caller
  goes on it is discarded: nothing of it was heard, shown or kept in the conversation.
- held: a caller sound that starts before the reply made any sound holds it until the sound's words are
  known: a backchannel or a sound without words ("mm-hm", a breath) releases it, anything else replaces it
  (the turn taker answers the caller's words, joined to the ones this reply answered).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from speech.timing import STAGES

Emit = Callable[[str, dict[str, Any]], None]


@dataclass
class ReplyTimeline:
    """Monotonic times of one reply's stages (``speech.timing.STAGES``) as they happen; ``as_delays`` gives
    seconds after the end of caller speech (what the call record keeps). ``speech.timing.TurnTimings`` is
    the finished turn fed to the latency histograms. A speculative reply may mark ``llm_first_token`` before
    ``stt_final``: it was prepared during the caller's pause."""

    speech_end: float
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, t: float | None = None) -> None:
        self.marks.setdefault(stage, time.monotonic() if t is None else t)

    def as_delays(self) -> dict[str, float]:
        return {s: round(self.marks[s] - self.speech_end, 4) for s in STAGES if s in self.marks}


class ReplyInFlight:
    """The state of one reply task (``TurnTaker`` owns the task and the speaking)."""

    def __init__(self, user_text: str, timing: ReplyTimeline, emit: Emit, *, speculative: bool) -> None:
        self.user_text = user_text
        self.timing = timing
        self.speculative = speculative
        self.task: asyncio.Task[None] | None = None
        self.made_sound = False  # some of its audio went to playback
        self.discarded = False  # dropped before the caller heard anything: retract, record nothing
        self._emit = emit
        self._committed = not speculative
        self._held = False
        self._buffered: list[tuple[str, dict[str, Any]]] = []
        self._voice = asyncio.Event()
        self._committed_event = asyncio.Event()
        self._release_timer: asyncio.TimerHandle | None = None
        self._update()

    @property
    def committed(self) -> bool:
        return self._committed

    @property
    def held(self) -> bool:
        return self._held

    @property
    def done(self) -> bool:
        return self.task is None or self.task.done()

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """A live event of this reply: sent at once when committed, else kept until ``commit``."""
        if self._committed:
            self._emit(kind, data)
        else:
            self._buffered.append((kind, data))

    def commit(self, speech_end: float, stt_ready: float) -> None:
        """The turn ended with the words this reply answers: it may speak; its held-back events go out."""
        self._committed = True
        self.timing.speech_end = speech_end
        self.timing.mark("stt_final", stt_ready)
        events, self._buffered = self._buffered, []
        for kind, data in events:
            self._emit(kind, data)
        self._update()

    def hold(self) -> None:
        self._held = True
        self._update()

    def release(self) -> None:
        self._held = False
        self._update()

    def release_after(self, seconds: float) -> None:
        """Release the hold in ``seconds`` unless it is released or held again before."""
        self._release_timer = asyncio.get_running_loop().call_later(seconds, self.release)

    async def wait_committed(self) -> None:
        """Until the turn this reply answers has ended with its words (at once for a non-speculative one)."""
        await self._committed_event.wait()

    async def wait_voice(self) -> None:
        """Until this reply may put audio into playback."""
        await self._voice.wait()

    def _update(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if self._committed:
            self._committed_event.set()
        if self._committed and not self._held:
            self._voice.set()
        else:
            self._voice.clear()
