"""Runs a blocking chunk generator on a shared worker pool and streams its items to async code.

Piper and coqui synthesize in native code that holds a core for tens of milliseconds per sentence;
running them on the event loop would stall every call's audio. The pool is bounded and shared so many
calls cannot start more synthesis threads than there are cores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from speech.frames import AudioFrame
from speech.threads import TTS_THREADS, name_this_thread

T = TypeVar("T")

# OS-named so the server can count synthesis CPU time (speech.threads)
_POOL = ThreadPoolExecutor(
    max_workers=2, thread_name_prefix="tts", initializer=name_this_thread, initargs=(TTS_THREADS,)
)
_DONE = object()


async def stream_in_thread(make_iter: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Yield the items of ``make_iter()``, each produced by one job on the shared pool.

    The next item is produced while the consumer handles the current one (one item of read-ahead), so
    a long text streams with at most two pieces of audio held here, and no pool thread ever waits on a slow
    or vanished consumer. Stopping the consumer stops production after the item in progress.
    """
    iterator = make_iter()
    job: Future[object] = _POOL.submit(next, iterator, _DONE)
    try:
        while (item := await asyncio.wrap_future(job)) is not _DONE:
            job = _POOL.submit(next, iterator, _DONE)  # read-ahead: synthesize the next piece now
            yield item  # type: ignore[misc]
    finally:
        job.cancel()
        # Close the generator (its cleanup runs) only once no worker is inside it.
        job.add_done_callback(lambda _job: _close(iterator))


def _close(iterator: Iterator[object]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


async def synthesize_in_thread(
    make_chunks: Callable[[], Iterator[np.ndarray]], sample_rate: int, text: str
) -> AsyncIterator[AudioFrame]:
    """Frames of a blocking synthesizer's int16 chunks, tagged with their text (see ``TextToSpeech``)."""
    if not any(ch.isalnum() for ch in text):
        return  # nothing to pronounce (see TextToSpeech)
    async for pcm in stream_in_thread(make_chunks):
        yield AudioFrame(pcm, sample_rate, meta={"text": text})
