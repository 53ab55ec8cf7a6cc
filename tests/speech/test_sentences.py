from __future__ import annotations

import pytest

from speech.sentences import SentenceAggregator, split_for_speech


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


@pytest.mark.parametrize(
    "text, expected",
    [
        # First chunk cut at the first clause break after >= 4 words; later chunks stay whole sentences.
        (
            "Well, to be honest with you, I think it will rain. Later, it will clear up, they say.",
            ["Well, to be honest with you,", "I think it will rain.", "Later, it will clear up, they say."],
        ),
        # No punctuation within 8 words: cut before a phrase-starting word (here "for"), not mid-phrase.
        (
            "I found three open slots for you on Monday morning next week. Pick one.",
            ["I found three open slots", "for you on Monday morning next week.", "Pick one."],
        ),
        # No phrase-starting word either: cut after 8 words.
        (
            "One two three four five six seven eight nine ten. Done.",
            ["One two three four five six seven eight", "nine ten.", "Done."],
        ),
        # A short first sentence is not cut ("Sure," has fewer than 4 words before it).
        ("Sure, I can help with that. Bye.", ["Sure, I can help with that.", "Bye."]),
        ("Numbers like 1,000,000 stay whole here. Ok.", ["Numbers like 1,000,000 stay whole here.", "Ok."]),
    ],
)
def test_first_chunk_is_cut_early_for_a_fast_first_audio(text: str, expected: list[str]) -> None:
    assert feed(text) == expected
    assert feed(text, step=1) == expected
    assert feed(text, step=len(text)) == expected  # the whole reply at once


def test_early_first_cut_can_be_turned_off_and_restarts_after_flush() -> None:
    text = "I found three open slots for you on Monday morning next week."
    assert feed(text, first_chunk_words=0) == [text]
    agg = SentenceAggregator()
    assert agg.push(text) == ["I found three open slots"]
    assert agg.flush() == ["for you on Monday morning next week."]
    assert agg.push(text) == ["I found three open slots"]  # a new reply gets a short first chunk again


def test_long_text_pushed_at_once_comes_out_in_bounded_chunks() -> None:
    # Before the fix, the clause/word cut took the LAST break of the whole buffer: one 10,000-char chunk.
    for text in ("no full stop here, just words and commas " * 250, "word " * 2000, "x" * 10_000):
        agg = SentenceAggregator(max_chars=150)
        out = agg.push(text) + agg.flush()
        assert len(out) > 30 and max(len(s) for s in out) <= 300, (len(out), max(len(s) for s in out))
        assert "".join(out).replace(" ", "") == text.replace(" ", "")


def test_split_for_speech_drops_pieces_with_nothing_to_say() -> None:
    assert split_for_speech("😀🎉 👍") == []
    assert split_for_speech("...!? —") == []
    assert split_for_speech("") == []
    assert split_for_speech("Great! 🎉 See you soon.") == ["Great!", "See you soon."]
