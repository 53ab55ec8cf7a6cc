"""Evaluate an agent on a set of caller questions: answers checked against accepted facts, refusals where the
knowledge base has no answer, invented facts, time to the first sentence. See README.md in this package.

``load_cases(path)`` -> ``evaluate(cases, factory, retriever=...)`` -> ``EvaluationReport``;
``run_file(path, factory, ...)`` does all of it and returns the exit status for ``voice-agent eval``.
"""

from agent.evaluation.cli import run_file
from agent.evaluation.dataset import EvalCase, EvalFileError, load_cases, parse_cases
from agent.evaluation.report import failure_row, format_failures, format_scores, print_report
from agent.evaluation.runner import CaseResult, EvaluationReport, EvaluationTarget, evaluate

__all__ = [
    "CaseResult",
    "EvalCase",
    "EvalFileError",
    "EvaluationReport",
    "EvaluationTarget",
    "evaluate",
    "failure_row",
    "format_failures",
    "format_scores",
    "load_cases",
    "parse_cases",
    "print_report",
    "run_file",
]
