from __future__ import annotations

import pytest

from speech.sentences import SentenceAggregator


def feed(text: str, step: int = 3, **kwargs: int) -> list[str]:
    agg = SentenceAggregator(**kwargs)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += agg.push(text[i : i + step])
    return out + agg.flush()


def test_emits_each_sentence_as_soon_as_the_next_token_starts() -> None:
    agg = SentenceAggregator()
    assert agg.push("Hello there") == []
    assert agg.push(".") == []  # could still be "there.com"
    assert agg.push(" How") == ["Hello there."]
    assert agg.push(" are you?") == []
    assert agg.push(" ") == ["How are you?"]
    assert agg.flush() == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Dr. Smith is here. He waits.", ["Dr. Smith is here.", "He waits."]),
        ("Ask Mr. and Mrs. Jones. Then go.", ["Ask Mr. and Mrs. Jones.", "Then go."]),
        ("Bring fruit, e.g. apples. Thanks.", ["Bring fruit, e.g. apples.", "Thanks."]),
        ("Pi is 3.14 roughly. Yes.", ["Pi is 3.14 roughly.", "Yes."]),
        ("See https://example.com/a.b?x=1 now. Ok.", ["See https://example.com/a.b?x=1 now.", "Ok."]),
        ("Go to example.com. Bye!", ["Go to example.com.", "Bye!"]),
        ("Pens, paper, etc. Also ink.", ["Pens, paper, etc.", "Also ink."]),
        ("Meet at 5 p.m. today. Ok.", ["Meet at 5 p.m. today.", "Ok."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        ("Wait... what? Really!", ["Wait...", "what?", "Really!"]),
        ("Line one\nLine two", ["Line one", "Line two"]),
    ],
)
def test_sentence_boundaries(text: str, expected: list[str]) -> None:
    assert feed(text) == expected
    assert feed(text, step=1) == expected


def test_long_clause_is_cut_at_a_comma() -> None:
    text = "This reply never ends a sentence, it keeps adding clauses, one after another, " * 3
    out = feed(text, max_chars=100, min_clause_chars=20)
    assert len(out) >= 2
    assert all(len(s) <= 100 for s in out[:-1])
    assert out[0].endswith(",")
    assert " ".join(out) == " ".join(text.split())


def test_no_clause_break_falls_back_to_a_word_boundary() -> None:
    out = feed("word " * 60, max_chars=80, min_clause_chars=20)
    assert len(out) >= 3 and all(s.split() and set(s.split()) == {"word"} for s in out)
