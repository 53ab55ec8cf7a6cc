"""The printed evaluation: scores per split and the table of failures (question, expected, said, evidence)."""

from __future__ import annotations

import textwrap
from typing import Any, TextIO

from agent.evaluation.runner import CaseResult, EvaluationReport

_SCORE_KEYS = (
    "answer_accuracy", "unanswerable_refusal_rate", "invented_fact_rate", "first_sentence_s_p50",
    "first_sentence_s_p90", "questions", "wrong_answer_rate", "answerable_refused_rate", "small_talk_refusal_rate",
    "errors",
)  # fmt: skip


def splits_of(report: EvaluationReport) -> list[str]:
    return sorted({r.case.split for r in report.results})


def format_scores(report: EvaluationReport) -> str:
    """One column per split plus "all"."""
    columns = [*splits_of(report), "all"] if len(splits_of(report)) > 1 else ["all"]
    table = {c: report.scores(c) for c in columns}
    width = max(len(k) for k in _SCORE_KEYS)
    lines = [f"{'score':<{width}}  " + "  ".join(f"{c:>8}" for c in columns)]
    for key in _SCORE_KEYS:
        cells = "  ".join(f"{_cell(table[c][key]):>8}" for c in columns)
        lines.append(f"{key:<{width}}  {cells}")
    produced = ", ".join(f"{k} {v}" for k, v in table["all"]["produced_by"].items())
    lines.append(f"{'produced_by (all)':<{width}}  {produced}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _expected(result: CaseResult) -> str:
    case = result.case
    if case.category == "unanswerable":
        return "(refusal)"
    if case.category == "small_talk":
        return "(no refusal)"
    return "; ".join(" | ".join(forms) for forms in case.expect)


def _why(result: CaseResult) -> str:
    if result.error:
        return f"error: {result.error}"
    reasons = []
    if result.invented:
        reasons.append("invented " + ", ".join(result.invented))
    category = result.case.category
    if category == "answerable" and not result.correct:
        reasons.append("refused" if result.refused else "fact missing")
    elif category == "unanswerable" and not result.refused:
        reasons.append("not refused")
    elif category == "small_talk" and result.refused:
        reasons.append("small talk refused")
    return "; ".join(reasons)


def failure_row(result: CaseResult) -> dict[str, Any]:
    """One failure as JSON (the dashboard's table): question, expected, said, why, and its evidence."""
    case = result.case
    return {
        "id": case.id,
        "split": case.split,
        "kind": case.kind or case.category,
        "after": list(case.after),
        "question": case.ask,
        "expected": _expected(result),
        "said": result.reply,
        "why": _why(result),
        "produced_by": result.produced_by,
        "confidence": result.confidence,
        "evidence": result.evidence[:3],
    }


def format_failures(report: EvaluationReport, split: str | None = None, width: int = 100) -> str:
    failures = report.failures(split)
    if not failures:
        return "no failures"
    blocks = [f"{len(failures)} failure(s):"]

    def wrap(label: str, text: str) -> str:
        return textwrap.fill(text, width, initial_indent=f"  {label:<9}", subsequent_indent=" " * 11)

    for r in failures:
        evidence = " / ".join(f"[{e['doc_id']}] {e['sentence']}" for e in r.evidence[:2]) or "(none)"
        head = f"- {r.case.id} ({r.case.split}, {r.case.kind or r.case.category}): {_why(r)}"
        if r.produced_by:
            head += f"  [produced_by {r.produced_by}, confidence {_cell(r.confidence)}]"
        prior = [wrap("after", " / ".join(r.case.after))] if r.case.after else []
        blocks.append(
            "\n".join(
                [
                    head,
                    *prior,
                    wrap("question", r.case.ask),
                    wrap("expected", _expected(r)),
                    wrap("said", r.reply or "(nothing)"),
                    wrap("evidence", evidence),
                ]
            )
        )
    return "\n".join(blocks)


def print_report(report: EvaluationReport, out: TextIO) -> None:
    out.write(format_scores(report) + "\n\n" + format_failures(report) + "\n")
