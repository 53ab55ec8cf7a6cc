"""``OutageTolerantJobStore``: APScheduler's SQLAlchemy job store whose writes from the scheduling thread
survive a database that refuses them for a while (a full disk under a SQLite job store, a PostgreSQL
restart).

APScheduler 3 guards ``get_due_jobs`` (it retries after ``jobstore_retry_interval``) but calls
``update_job``, ``remove_job`` and ``get_next_run_time`` from its scheduling thread without a guard: one
``database or disk is full`` there ended the thread, and no job (campaigns, call-backs, intent analysis)
ran again until the process was restarted. Here such a failure is logged and the thread pauses
``retry_s`` (it is the scheduler's own thread: nothing else waits on it) instead of spinning on a job
whose next run time could not be stored; the job runs again once the store takes writes (coalesced; the
ledger makes a second publish of a prompt a no-op).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

log = logging.getLogger(__name__)

_DATABASE_AWAY = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class OutageTolerantJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    def __init__(self, *args: Any, retry_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_s = retry_s

    def update_job(self, job: Any) -> None:
        try:
            super().update_job(job)
        except _DATABASE_AWAY as exc:
            self._away(f"storing the next run of job {job.id}", exc)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except _DATABASE_AWAY as exc:
            self._away(f"removing finished job {job_id}", exc)

    def get_next_run_time(self) -> datetime | None:
        try:
            return super().get_next_run_time()  # type: ignore[no-any-return]
        except _DATABASE_AWAY as exc:
            self._away("reading the next run time", exc)
            return datetime.now().astimezone() + timedelta(seconds=self.retry_s)

    def _away(self, what: str, exc: Exception) -> None:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        log.warning("job store refused %s (%s); the scheduler retries in %.0f s", what, detail, self.retry_s)
        time.sleep(self.retry_s)
