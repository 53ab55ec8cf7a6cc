"""``EventLoopExecutor``: APScheduler's scheduling thread hands coroutine jobs to the service's event loop.

The scheduler runs as APScheduler's ``BackgroundScheduler``: its own thread reads and writes the job store
(SQLAlchemy; on PostgreSQL a query may wait for a connect or statement timeout), so the event loop that
carries the node's calls never waits on the job store. The jobs themselves are coroutines of the service
(publishing on the bus, awaiting the ledger); this executor runs each on the loop it was bound to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_coroutine_job


class EventLoopExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs coroutine jobs on ``loop`` (``bind`` it before the scheduler starts)."""

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[concurrent.futures.Future[Any]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def shutdown(self, wait: bool = True) -> None:
        for future in list(self._pending):
            future.cancel()
        self._pending.clear()

    def _do_submit_job(self, job: Any, run_times: list[Any]) -> None:
        if self._loop is None or self._loop.is_closed():
            raise RuntimeError(f"job {job.id}: the scheduler's event loop is gone")
        coro = run_coroutine_job(job, job._jobstore_alias, run_times, self._logger.name)
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        self._pending.add(future)

        def done(f: concurrent.futures.Future[Any]) -> None:
            self._pending.discard(f)
            if f.cancelled():  # the scheduler stopped while the job ran: not a failure of the job
                self._run_job_success(job.id, [])
                return
            try:
                events = f.result()
            except BaseException:  # noqa: BLE001 - APScheduler reports every failure of a job as its event
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        future.add_done_callback(done)
