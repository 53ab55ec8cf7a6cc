"""Knowledge-base evaluations started from the dashboard: an uploaded YAML/CSV question file runs through the
node's own agent (``agent.evaluation``) as a background job, one at a time, with progress, scores and
failures readable while and after it runs.

Routes (admin token; ``admin_endpoints`` mounts them):
  POST /api/admin/evaluations            multipart/form-data with a ``file`` field -> 202 the job
  GET  /api/admin/evaluations            recent jobs, newest first (without their failures)
  GET  /api/admin/evaluations/{job_id}   one job: progress, then scores and failures
A node without a knowledge base answers 404 with the reason; a second run while one runs gets 409.
The questions run on the node's shared models, between live calls' turns: one job at a time bounds that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, Field

from agent.evaluation import (
    CaseResult,
    EvalCase,
    EvalFileError,
    EvaluationReport,
    EvaluationTarget,
    failure_row,
    parse_cases,
)
from server.http.admin.openapi import Endpoint
from server.http.guards import admin_principal
from server.security.admin_auth import TenantForbidden

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 256 * 1024
MAX_QUESTIONS = 500
KEEP_JOBS = 5


class EvaluationRejected(Exception):
    """The run cannot start: ``status`` is the HTTP status to answer with, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class EvaluationJob:
    id: str
    file_name: str
    cases: list[EvalCase]
    started_at: float = field(default_factory=time.time)
    status: Literal["running", "done", "failed", "cancelled"] = "running"
    results: list[CaseResult] = field(default_factory=list)
    finished_at: float | None = None
    error: str | None = None

    def view(self, *, failures: bool = True) -> dict[str, Any]:
        report = EvaluationReport(self.results)
        splits = sorted({c.split for c in self.cases})
        view: dict[str, Any] = {
            "job_id": self.id,
            "file_name": self.file_name,
            "status": self.status,
            "total": len(self.cases),
            "done": len(self.results),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "scores": report.scores() if self.results else None,
            "scores_by_split": {s: report.scores(s) for s in splits} if len(splits) > 1 else {},
        }
        if failures:
            view["failures"] = [failure_row(r) for r in report.failures()]
        return view


class EvaluationJobs:
    """Evaluation runs of one node on ``target`` (``EvaluationTarget.of_calls`` on the node's conversation
    factory and knowledge base); the last ``KEEP_JOBS`` are kept in memory."""

    def __init__(self, target: EvaluationTarget) -> None:
        self.target = target
        self._jobs: OrderedDict[str, EvaluationJob] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def start(self, file_name: str, data: bytes) -> EvaluationJob:
        """Parse the uploaded file and start running it; raises ``EvaluationRejected``."""
        if self._task is not None and not self._task.done():
            raise EvaluationRejected(409, "an evaluation is already running; wait for it to finish")
        if len(data) > MAX_FILE_BYTES:
            raise EvaluationRejected(400, f"{file_name}: larger than {MAX_FILE_BYTES // 1024} KiB")
        try:
            cases = parse_cases(data.decode("utf-8-sig"), file_name)
        except UnicodeDecodeError:
            raise EvaluationRejected(400, f"{file_name}: not UTF-8 text") from None
        except EvalFileError as exc:
            raise EvaluationRejected(400, str(exc)) from exc
        if len(cases) > MAX_QUESTIONS:
            raise EvaluationRejected(400, f"{file_name}: {len(cases)} questions; at most {MAX_QUESTIONS}")
        job = EvaluationJob(uuid.uuid4().hex[:12], file_name, cases)
        self._jobs[job.id] = job
        while len(self._jobs) > KEEP_JOBS:
            self._jobs.popitem(last=False)
        self._task = asyncio.create_task(self._run(job), name=f"evaluation-{job.id}")
        log.info("evaluation %s started: %s, %d questions", job.id, file_name, len(cases))
        return job

    def get(self, job_id: str) -> EvaluationJob | None:
        return self._jobs.get(job_id)

    def recent(self) -> list[EvaluationJob]:
        return list(reversed(self._jobs.values()))

    async def close(self) -> None:
        """Cancel a running job (the node is stopping)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, job: EvaluationJob) -> None:
        try:
            await self.target.evaluate(job.cases, on_result=job.results.append)
            job.status = "done"
        except asyncio.CancelledError:
            job.status = "cancelled"
            raise
        except Exception as exc:  # the job fails, the node does not
            log.exception("evaluation %s failed", job.id)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            log.info(
                "evaluation %s %s after %d of %d questions",
                job.id,
                job.status,
                len(job.results),
                len(job.cases),
            )


# --- HTTP -----------------------------------------------------------------------------------------------


class EvaluationJobView(BaseModel):
    job_id: str
    file_name: str
    status: Literal["running", "done", "failed", "cancelled"]
    total: int = Field(description="questions in the file")
    done: int = Field(description="questions answered so far")
    started_at: float
    finished_at: float | None = None
    error: str | None = None
    scores: dict[str, Any] | None = Field(
        None,
        description="answer_accuracy, unanswerable_refusal_rate, invented_fact_rate, first_sentence_s_p50...",
    )
    scores_by_split: dict[str, dict[str, Any]] = Field(default_factory=dict)
    failures: list[dict[str, Any]] | None = Field(
        None, description="question, expected, said, why, produced_by, confidence, evidence"
    )


class EvaluationJobList(BaseModel):
    evaluations: list[EvaluationJobView] = Field(description="newest first, without failures")


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class EvaluationHandlers:
    def __init__(self, jobs: EvaluationJobs | None) -> None:
        self.jobs = jobs

    def _require_jobs(self) -> EvaluationJobs:
        if self.jobs is None:
            raise web.HTTPNotFound(
                text='{"error": "evaluations need the knowledge base, which this server did not start"}',
                content_type="application/json",
            )
        return self.jobs

    def _require_global(self, request: web.Request) -> EvaluationJobs:
        """Evaluations run on the default tenant's agent and knowledge base: a token scoped to one tenant
        must not read them (403), its documents are not what they measure."""
        if not admin_principal(request).is_global:
            raise TenantForbidden("evaluations need a global admin token (they run on the default tenant)")
        return self._require_jobs()

    async def start(self, request: web.Request) -> web.Response:
        jobs = self._require_global(request)
        try:
            file_name, data = await _uploaded_file(request)
            job = jobs.start(file_name, data)
        except EvaluationRejected as exc:
            return _json_error(exc.status, str(exc))
        return web.json_response(job.view(), status=202)

    async def list_jobs(self, request: web.Request) -> web.Response:
        jobs = self._require_global(request)
        return web.json_response({"evaluations": [job.view(failures=False) for job in jobs.recent()]})

    async def get(self, request: web.Request) -> web.Response:
        job = self._require_global(request).get(request.match_info["job_id"])
        if job is None:
            return _json_error(404, "no such evaluation (only the last few are kept)")
        return web.json_response(job.view())


async def _uploaded_file(request: web.Request) -> tuple[str, bytes]:
    """The ``file`` field of a multipart upload, read up to ``MAX_FILE_BYTES`` (+1 to tell it was more)."""
    if not request.content_type.startswith("multipart/"):
        raise EvaluationRejected(400, "send the question file as multipart/form-data in a field named 'file'")
    try:
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name == "file":
                data = bytearray()
                while len(data) <= MAX_FILE_BYTES and (chunk := await part.read_chunk()):
                    data.extend(chunk)
                return part.filename or "questions.yaml", bytes(data)
    except (ValueError, AssertionError) as exc:  # aiohttp's errors for a malformed multipart body
        raise EvaluationRejected(400, f"malformed multipart body: {exc}") from exc
    raise EvaluationRejected(400, "no 'file' field in the upload")


def evaluation_endpoints(jobs: EvaluationJobs | None) -> list[Endpoint]:
    h = EvaluationHandlers(jobs)
    return [
        Endpoint(
            "POST",
            "/evaluations",
            h.start,
            "Run a question file (multipart/form-data, field 'file': YAML or CSV, agent/evaluation/README.md) "
            "through this node's agent and knowledge base, in the background",
            (202, EvaluationJobView, "the started job"),
            (400, 401, 403, 404, 409),
        ),
        Endpoint(
            "GET",
            "/evaluations",
            h.list_jobs,
            "Recent evaluation jobs, newest first",
            (200, EvaluationJobList, "jobs"),
            (401, 403, 404),
        ),
        Endpoint(
            "GET",
            "/evaluations/{job_id}",
            h.get,
            "One evaluation job: progress, then scores and failures",
            (200, EvaluationJobView, "the job"),
            (401, 403, 404),
        ),
    ]
