"""``run_file``: what ``voice-agent eval FILE`` does once the server side has built the configured agent."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from agent.evaluation.dataset import EvalFileError, load_cases
from agent.evaluation.report import print_report
from agent.evaluation.runner import ConversationFactory, EvaluationReport, evaluate
from agent.retrieval import Retriever

EXIT_OK, EXIT_BELOW_MINIMUM, EXIT_BAD_FILE = 0, 1, 2


async def run_file(
    path: str | Path,
    factory: ConversationFactory,
    *,
    retriever: Retriever | None = None,
    known_texts: Iterable[str] = (),
    top_k: int = 3,
    split: str | None = None,
    min_accuracy: float | None = None,
    min_refusal_rate: float | None = None,
    max_invented_rate: float | None = None,
    out: TextIO | None = None,
) -> int:
    """Loads ``path`` (YAML or CSV), runs it, prints the scores, the failures and one JSON line of scores.

    Returns 0 when every given minimum holds, 1 when a score falls below it (each such score is named),
    2 when the file is unusable (the reason is printed)."""
    out = out or sys.stdout
    try:
        cases = load_cases(path)
    except EvalFileError as exc:
        out.write(f"error: {exc}\n")
        return EXIT_BAD_FILE
    if split not in (None, "all"):
        cases = [c for c in cases if c.split == split]
        if not cases:
            out.write(f"error: {path} has no questions in split {split!r}\n")
            return EXIT_BAD_FILE
    report = await evaluate(cases, factory, retriever=retriever, known_texts=known_texts, top_k=top_k)
    print_report(report, out)
    scores = report.scores()
    out.write(json.dumps({k: v for k, v in scores.items() if k != "produced_by"}) + "\n")
    missed = below_minimum(report, min_accuracy, min_refusal_rate, max_invented_rate)
    for line in missed:
        out.write(f"below minimum: {line}\n")
    return EXIT_BELOW_MINIMUM if missed else EXIT_OK


def below_minimum(
    report: EvaluationReport,
    min_accuracy: float | None = None,
    min_refusal_rate: float | None = None,
    max_invented_rate: float | None = None,
) -> list[str]:
    """The scores that miss their bound, as "name value (bound)" lines; a score with no cases is not judged."""
    scores = report.scores()
    missed = []
    checks = [
        ("answer_accuracy", min_accuracy, ">="),
        ("unanswerable_refusal_rate", min_refusal_rate, ">="),
        ("invented_fact_rate", max_invented_rate, "<="),
    ]
    for name, bound, sign in checks:
        value = scores[name]
        if bound is None or value is None:
            continue
        if (value < bound) if sign == ">=" else (value > bound):
            missed.append(f"{name} {value:.3f} (needs {sign} {bound})")
    return missed
