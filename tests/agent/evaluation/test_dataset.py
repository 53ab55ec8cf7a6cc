"""Evaluation files: YAML and CSV, and clear errors for broken ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.evaluation import EvalFileError, load_cases

YAML = """
questions:
  - {id: q1, ask: "How much is a battery?", expect: ["69"]}
  - {id: q2, ask: "And on Sundays?", after: ["When are you open on Saturday?"], expect: [["closed", "shut"]]}
  - {id: q3, ask: "Do you sell gift cards?", refuse: true, split: dev}
  - {id: q4, ask: "Thanks!"}
"""
CSV = """id,ask,expect,refuse,after,split
q1,How much is a battery?,69,,,test
q2,And on Sundays?,closed|shut,,When are you open on Saturday?,test
q3,Do you sell gift cards?,,yes,,dev
q4,"How much, and how long?",59;90 days,,,test
"""


def test_yaml_cases(tmp_path: Path) -> None:
    path = tmp_path / "set.yaml"
    path.write_text(YAML)
    cases = load_cases(path)
    assert [c.category for c in cases] == ["answerable", "answerable", "unanswerable", "small_talk"]
    assert cases[1].expect == (("closed", "shut"),) and cases[1].after == ("When are you open on Saturday?",)
    assert cases[2].split == "dev" and cases[0].split == "test"


def test_csv_cases(tmp_path: Path) -> None:
    path = tmp_path / "set.csv"
    path.write_text(CSV)
    cases = load_cases(path)
    assert [c.id for c in cases] == ["q1", "q2", "q3", "q4"]
    assert cases[1].expect == (("closed", "shut"),) and cases[1].after == ("When are you open on Saturday?",)
    assert cases[2].refuse and cases[3].expect == (("59",), ("90 days",))


def test_the_bench_sets_load() -> None:
    root = Path(__file__).resolve().parents[3] / "bench" / "data" / "answers"
    kbs = ("shop", "clinic", "software", "gym", "garage", "vet", "hotel")
    cases = [c for kb in kbs for c in load_cases(root / kb / "questions.yaml")]
    assert sum(c.category == "answerable" for c in cases) >= 60
    assert sum(c.category == "unanswerable" for c in cases) >= 15
    assert {c.split for c in cases} == {"dev", "test", "test2", "test3"}
    held_out = [c for c in cases if c.split == "test3"]  # round 2's held-out split: never used for tuning
    assert sum(c.category == "answerable" for c in held_out) >= 60
    assert sum(c.category == "unanswerable" for c in held_out) >= 20
    assert {c.id.split("-")[0] for c in held_out} == {"shop", "clinic", "soft", "gym", "garage", "vet", "hotel"}


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("a.yaml", "questions: [", "not valid YAML"),
        ("a.yaml", "questions: []", "non-empty list"),
        ("a.yaml", "questions:\n  - {expect: ['1']}", "'ask' must be"),
        ("a.yaml", "questions:\n  - {ask: x, expect: ['1'], refuse: true}", "cannot both"),
        ("a.yaml", "questions:\n  - {id: a, ask: x}\n  - {id: a, ask: y}", "duplicate id"),
        ("a.yaml", "questions:\n  - {ask: x, expect: {a: 1}}", "'expect' must be"),
        ("a.csv", "question_text\nx\n", "'ask' column"),
        ("a.txt", "x", "unknown evaluation file type"),
    ],
)
def test_broken_files_say_why(tmp_path: Path, name: str, text: str, reason: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(EvalFileError, match=reason):
        load_cases(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EvalFileError, match="cannot read"):
        load_cases(tmp_path / "nope.yaml")
