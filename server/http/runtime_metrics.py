"""Figures of a long-running node that say whether calls leave something behind: asyncio tasks and Python
threads, read at each scrape of ``/metrics``. Resident memory and open file descriptors come from
prometheus_client's process collector (``process_resident_memory_bytes``, ``process_open_fds``);
``bench/reliability.py`` churns calls and reads all four."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import Gauge

LOOP_TASKS = Gauge("voice_agent_event_loop_tasks", "asyncio tasks alive on the node's event loop")
THREADS = Gauge("voice_agent_threads", "Python threads alive in the node process")


def watch(loop: asyncio.AbstractEventLoop) -> None:
    """Report ``loop``'s tasks and the process's threads from now on."""
    LOOP_TASKS.set_function(lambda: len(asyncio.all_tasks(loop)))
    THREADS.set_function(threading.active_count)
