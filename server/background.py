"""Background work a node component owns: a periodic sweep, and the tasks a sweep hands work to.

Both exist so that nothing is lost silently: a sweep that fails is logged and tried again on the next
tick (one bad database moment must not end the loop for the life of the node), and a spawned task stays
referenced until it ends and is cancelled and awaited when its owner stops (no orphan speaking into a
closed call after shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)


async def run_every(
    interval_s: float, action: Callable[[], Awaitable[object]], what: str, *, first_now: bool = False
) -> None:
    """Await ``action`` every ``interval_s`` seconds until cancelled (the first run at once when
    ``first_now``, else after one interval); a failure is logged as ``what`` failed and the loop goes on."""
    if not first_now:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await action()
        except Exception:
            log.exception("%s failed; next try in %.0f s", what, interval_s)
        await asyncio.sleep(interval_s)


class BackgroundTasks:
    """Tasks started by one owner, kept referenced until done; ``cancel_all`` ends them when it stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
