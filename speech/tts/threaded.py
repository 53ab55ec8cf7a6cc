"""Runs a blocking chunk generator on a shared worker pool and streams its items to async code.

Piper and coqui synthesize in native code that holds a core for tens of milliseconds per sentence;
running them on the event loop would stall every call's audio. The pool is bounded and shared so many
calls cannot start more synthesis threads than there are cores.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from speech.frames import AudioFrame

T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tts")
_DONE = object()


async def stream_in_thread(make_iter: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Yield items of ``make_iter()`` produced in a worker thread; stops the worker when the consumer stops.

    The hand-over queue is unbounded on purpose: input is one sentence, so its audio is bounded, and a
    worker never blocks on a consumer that went away.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            for item in make_iter():
                if stop.is_set():
                    return
                put(item)
            put(_DONE)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            if not stop.is_set():
                put(exc)

    future = loop.run_in_executor(_POOL, work)
    try:
        while (item := await queue.get()) is not _DONE:
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        future.cancel()


async def synthesize_in_thread(
    make_chunks: Callable[[], Iterator[np.ndarray]], sample_rate: int, text: str
) -> AsyncIterator[AudioFrame]:
    """Frames of a blocking synthesizer's int16 chunks, tagged with their text (see ``TextToSpeech``)."""
    if not text.strip():
        return
    async for pcm in stream_in_thread(make_chunks):
        yield AudioFrame(pcm, sample_rate, meta={"text": text})
