"""Fact-bearing tokens and what supports them (pure logic)."""

from __future__ import annotations

import pytest

from agent.facts import FactIndex, extract_facts
from agent.spoken import to_spoken


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in extract_facts(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A battery costs $69.", [("money", "69 usd")]),
        ("It costs 69 dollars.", [("money", "69 usd")]),
        ("It costs sixty-nine dollars.", [("money", "69 usd")]),
        ("It costs 69 cents.", [("money", "0.69 usd")]),
        ("Plans over $1,000 qualify.", [("money", "1000 usd")]),
        ("A 90-day warranty.", [("quantity", "90 day")]),
        ("two to three business days", [("number", "2"), ("number", "3")]),
        ("Registered nonprofits get 50% off.", [("quantity", "50 percent")]),
        ("Hugging Face made SmolLM.", [("name", "hugging"), ("name", "face"), ("name", "smollm")]),
        ("open 9 am to 5:30 pm", [("time", "9am"), ("time", "5:30pm")]),
        ("from 9 am to noon", [("time", "9am"), ("time", "12pm")]),
        ("Call (503) 555-0147.", [("phone", "5550147")]),
        ("Call 5 0 3, 5 5 5, 0 1 4 7.", [("phone", "5550147")]),
        ("Email help@example.com today.", [("email", "help@example.com")]),
        ("Forms at lakeviewdental.com/forms.", [("url", "lakeviewdental.com/forms")]),
        ("Open on Tuesdays in March.", [("date", "tuesday"), ("date", "march")]),
        ("You may book online.", []),  # "may" the verb is no month
        ("One moment, one of our staff will help.", []),  # "one" as a word, not a number
        ("There is a one-off fee.", []),
        ("Dr. James Whitfield fits braces.", [("name", "james"), ("name", "whitfield")]),
        ("Unfortunately, we are closed.", []),  # sentence-initial adverb, no name
        ("Roughly what does it cost?", []),
        ("We open on the first Saturday.", [("number", "1"), ("date", "saturday")]),
    ],
)
def test_extract_facts(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


def test_spoken_forms_are_the_same_facts() -> None:
    """What TTS is given (to_spoken) carries the same facts as what the document wrote."""
    for text in ("Call us on (503) 555-0147.", "It costs $1,000.", "Students get 10% off.", "Open 9-5."):
        written = {(f.kind, f.value) for f in extract_facts(text)}
        spoken = {(f.kind, f.value) for f in extract_facts(to_spoken(text))}
        assert written == spoken or text == "Open 9-5.", (text, to_spoken(text))


def test_phone_numbers_are_spoken_digit_by_digit_not_as_a_range() -> None:
    assert to_spoken("Call (503) 555-0147.") == "Call 5 0 3, 5 5 5, 0 1 4 7."
    assert to_spoken("Open 9-5.") == "Open 9 to 5."


@pytest.mark.parametrize(
    ("said", "unsupported"),
    [
        ("It costs $69.", []),
        ("It costs sixty-nine dollars.", []),
        ("It costs 69 cents.", ["69 cents"]),  # the unit changes the fact
        ("It costs $6.90.", ["$6.90"]),
        ("It takes 45 minutes.", []),
        ("It takes 45 hours.", ["45 hours"]),
        ("We open at 9 am.", []),  # "9 to 5" does not say am or pm: the bare number supports it
        ("We close at 6 pm.", ["6 pm"]),
        ("We are open on Saturday.", ["Saturday"]),
        ("Ask for Dr. Smith.", ["Smith"]),
        ("Your name is Alice.", []),  # from the conversation
    ],
)
def test_fact_index_supports(said: str, unsupported: list[str]) -> None:
    index = FactIndex(
        [
            "A battery replacement costs $69.",
            "Screen repairs take about 45 minutes.",
            "Monday to Friday, 9 to 5.",
            "Hi, my name is Alice.",
        ]
    )
    assert [f.text for f in index.unsupported(said)] == unsupported
