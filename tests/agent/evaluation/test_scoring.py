"""Judging replies without a judge model (pure logic)."""

from __future__ import annotations

import pytest

from agent.evaluation.scoring import holds_fact, invented_facts, is_refusal, normalise


def test_normalise() -> None:
    assert normalise("It costs $1,000. Five business days, 9:00 am; 10% off.") == (
        "it costs 1000 dollars 5 business days 9 am 10 percent off"
    )


@pytest.mark.parametrize(
    ("reply", "forms", "held"),
    [
        ("A battery costs 69 dollars.", ["$69"], True),
        ("A battery costs $69.", ["69 dollars"], True),
        ("It takes five business days.", ["5 business days"], True),
        ("Call 5 0 3, 5 5 5, 0 1 4 7.", ["555-0147"], True),
        ("On Tuesdays and Thursdays.", ["tuesday"], True),
        ("It costs 169 dollars.", ["69"], False),  # whole numbers only
        ("Open 9 to 5.", ["59"], False),
        ("Email help@brightsiderepair.com.", ["help@brightsiderepair.com"], True),
    ],
)
def test_holds_fact(reply: str, forms: list[str], held: bool) -> None:
    assert holds_fact(reply, forms) is held


def test_refusal_needs_not_knowing_and_an_offer() -> None:
    assert is_refusal("I'm sorry, I don't have that information. I can have someone call you back.")
    assert is_refusal("I'm not sure about that; let me transfer you to a colleague.")
    assert not is_refusal("I don't know.")  # no call-back or transfer offered
    assert not is_refusal("We can call you back when your phone is ready.")  # offers, but answers


def test_invented_facts() -> None:
    sources = ["A battery replacement costs $69.", "You: how much is a battery?"]
    assert invented_facts("A battery costs 69 dollars.", sources) == []
    assert [f.text for f in invented_facts("It costs 69 cents and takes 2 hours.", sources)] == [
        "69 cents",
        "2 hours",
    ]
