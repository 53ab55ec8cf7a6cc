"""Evaluation cases from a YAML or CSV file: questions with accepted answers, questions that must be refused,
and small talk that must not be (the format is in ``agent/evaluation/README.md``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agent.errors import AgentError

Category = Literal["answerable", "unanswerable", "small_talk"]
_FIELDS = {"id", "ask", "question", "expect", "refuse", "after", "split", "kind"}


class EvalFileError(AgentError):
    """The evaluation file cannot be read or a case in it is invalid (the message says which and why)."""


@dataclass(frozen=True)
class EvalCase:
    """One scored caller turn. ``expect``: every fact must be in the reply, each as one of its accepted
    forms; ``refuse``: the agent must say it does not know and offer a call-back or transfer; neither: small
    talk, which must get a reply that is no refusal. ``after``: earlier turns of the same call."""

    id: str
    ask: str
    expect: tuple[tuple[str, ...], ...] = ()
    refuse: bool = False
    after: tuple[str, ...] = ()
    split: str = "test"
    kind: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> Category:
        if self.refuse:
            return "unanswerable"
        return "answerable" if self.expect else "small_talk"


def load_cases(path: str | Path) -> list[EvalCase]:
    """The cases of a ``.yaml``/``.yml`` or ``.csv`` file; raises ``EvalFileError`` with the reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"cannot read evaluation file {path}: {exc}") from exc
    return parse_cases(text, str(path))


def parse_cases(text: str, name: str) -> list[EvalCase]:
    """The cases of a file's ``text``; ``name`` (a file name) says by its suffix whether it is YAML or CSV."""
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return parse_csv(text, name)
    if suffix in (".yaml", ".yml"):
        return parse_yaml(text, name)
    raise EvalFileError(f"{name}: unknown evaluation file type {suffix!r}; use .yaml, .yml or .csv")


def parse_yaml(text: str, name: str = "<yaml>") -> list[EvalCase]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvalFileError(f"{name}: not valid YAML: {exc}") from exc
    rows = data.get("questions") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise EvalFileError(f"{name}: expected a non-empty list of questions (or a 'questions:' list)")
    return _cases(rows, name)


def parse_csv(text: str, name: str = "<csv>") -> list[EvalCase]:
    """Columns ``id, ask, expect, refuse, after, split, kind``: in ``expect`` facts are separated by ``;``
    and accepted forms of one fact by ``|``; in ``after`` turns are separated by ``|``."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"ask", "question"} & set(reader.fieldnames):
        raise EvalFileError(f"{name}: the CSV needs a header row with an 'ask' column")
    rows: list[dict[str, Any]] = []
    for row in reader:
        item: dict[str, Any] = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        expect = item.pop("expect", "")
        if expect:
            item["expect"] = [
                [alt.strip() for alt in fact.split("|") if alt.strip()] for fact in expect.split(";")
            ]
        after = item.pop("after", "")
        if after:
            item["after"] = [t.strip() for t in after.split("|") if t.strip()]
        refuse = item.pop("refuse", "")
        item["refuse"] = refuse.lower() in ("1", "true", "yes", "y")
        rows.append({k: v for k, v in item.items() if v not in ("", None)})
    if not rows:
        raise EvalFileError(f"{name}: the CSV has no questions")
    return _cases(rows, name)


def _cases(rows: Iterable[Any], name: str) -> list[EvalCase]:
    cases: list[EvalCase] = []
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        where = f"{name}: question {n}"
        if not isinstance(row, dict):
            raise EvalFileError(f"{where}: expected a mapping with 'ask', got {type(row).__name__}")
        case = _case(row, n, where)
        if case.id in seen:
            raise EvalFileError(f"{where}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


def _case(row: dict[str, Any], n: int, where: str) -> EvalCase:
    ask = row.get("ask", row.get("question"))
    if not isinstance(ask, str) or not ask.strip():
        raise EvalFileError(f"{where}: 'ask' must be the caller's words (a non-empty string)")
    expect = _expect(row.get("expect"), where)
    refuse = bool(row.get("refuse", False))
    if refuse and expect:
        raise EvalFileError(f"{where}: a question cannot both expect an answer and require a refusal")
    after = row.get("after") or []
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(t, str) and t.strip() for t in after):
        raise EvalFileError(f"{where}: 'after' must be a list of earlier caller turns")
    meta = {k: v for k, v in row.items() if k not in _FIELDS}
    return EvalCase(
        id=str(row.get("id") or f"q{n}"),
        ask=ask.strip(),
        expect=expect,
        refuse=refuse,
        after=tuple(t.strip() for t in after),
        split=str(row.get("split") or "test"),
        kind=str(row.get("kind") or ""),
        meta=meta,
    )


def _expect(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    if value is None or value == []:
        return ()
    if isinstance(value, (str, int, float)):
        value = [value]
    if not isinstance(value, list):
        raise EvalFileError(f"{where}: 'expect' must be a list of facts, got {type(value).__name__}")
    facts: list[tuple[str, ...]] = []
    for fact in value:
        forms = fact if isinstance(fact, list) else [fact]
        if not forms or not all(isinstance(f, (str, int, float)) and str(f).strip() for f in forms):
            raise EvalFileError(f"{where}: each expected fact must be text or a list of accepted forms")
        facts.append(tuple(str(f).strip() for f in forms))
    return tuple(facts)
