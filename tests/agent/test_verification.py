"""The check a model sentence passes before it is spoken: no recombined facts (pure logic)."""

from __future__ import annotations

import pytest

from agent.verification import SentenceCheck

EVIDENCE = [
    "A battery replacement costs $69 for any phone model.",
    "A charging port repair costs $59.",
    "A Samsung Galaxy screen replacement costs $149.",
    "Our shop is at 418 Harbor Street in Portland, Oregon.",
    "Free customer parking is behind the shop; the entrance is on Elm Lane.",
    "The Team plan costs $8 per user per month.",
    "The Business plan costs $15 per user per month.",
    "Screen and battery repairs take about 45 minutes.",
    "Every repair comes with a 90-day warranty.",
    "Monday to Friday: 9 am to 7 pm.",
    "Saturday: 10 am to 5 pm.",
]


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [
        ("A new battery costs $69 and takes about 45 minutes.", True),  # two clauses, two sources
        ("We are open Monday to Friday from 9 am to 7 pm and Saturday from 10 am to 5 pm.", True),
        ("The Team plan costs $8 per user per month.", True),
        ("Parking is behind the shop on Elm Lane.", True),
        ("Our shop is at 418 Elm Lane.", False),  # number of one address, street of another line
        ("The Team plan costs $15 per user per month.", False),  # the Business price
        ("A charging port repair costs $149.", False),  # the Samsung screen price
        ("We are open Saturday from 9 am to 7 pm.", False),  # weekday hours on Saturday
        ("A battery costs $79.", False),  # not in the evidence at all
        ("The warranty on a repair is 45 minutes.", False),  # a repair time, not a warranty
    ],
)
def test_sentence_check(sentence: str, ok: bool) -> None:
    check = SentenceCheck(EVIDENCE)
    assert (not check.unsupported(sentence)) is ok, check.unsupported(sentence)


def test_agent_lines_supply_names_but_cannot_back_numbers() -> None:
    check = SentenceCheck(EVIDENCE, context=["Dr. Okafor can see you at 3 pm."])
    assert not check.unsupported("Dr. Okafor is a great dentist.")
    assert check.unsupported("Dr. Okafor can see you at 3 pm.")
