"""Operating-system names for the threads that do speech work, so their CPU time can be told apart.

Native libraries (CTranslate2 for Whisper, ONNX Runtime for Piper) run most of their work on their own
threads, which Python does not know about. On Linux a new thread inherits its creator's name, so a model
loaded on a thread named ``va-stt`` gets worker threads named ``va-stt`` too; the server adds up the CPU time
of every thread by name (``/proc/self/task/*/comm``) and reports it per stage. Elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

STT_THREADS = "va-stt"
TTS_THREADS = "va-tts"
_PR_SET_NAME = 15
_PR_GET_NAME = 16


@functools.cache
def _prctl() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        log.debug("prctl unavailable; speech threads keep their names")
        return None


def name_this_thread(name: str) -> None:
    """Give the calling thread the OS name ``name`` (at most 15 bytes); a no-op where that is unsupported."""
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)  # type: ignore[operator]


def _this_thread_name() -> str | None:
    prctl = _prctl()
    if prctl is None:
        return None
    buf = ctypes.create_string_buffer(16)
    prctl(_PR_GET_NAME, buf, 0, 0, 0)  # type: ignore[operator]
    return buf.value.decode(errors="replace")


@contextmanager
def named_thread(name: str) -> Iterator[None]:
    """Run the block under the OS thread name ``name`` (threads it starts keep it), then restore the old one."""
    previous = _this_thread_name()
    name_this_thread(name)
    try:
        yield
    finally:
        if previous is not None:
            name_this_thread(previous)
