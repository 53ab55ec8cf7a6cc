"""Evidence sentences addressed to the caller (pure logic)."""

from __future__ import annotations

import pytest

from agent.evidence import Evidence
from agent.extractive import extractive_sentences, second_person


@pytest.mark.parametrize(
    ("sentence", "spoken"),
    [
        (
            "New patients should arrive 15 minutes early and bring their insurance card.",
            "You should arrive 15 minutes early and bring your insurance card.",
        ),
        ("A patient needs to bring a photo ID.", "You need to bring a photo ID."),
        ("Customers can return items within 30 days.", "You can return items within 30 days."),
        ("A new patient exam with x-rays costs $145.", "A new patient exam with x-rays costs $145."),
        ("Plus members get 2 free guest passes.", "Plus members get 2 free guest passes."),
        ("Customers who pay yearly save 20%.", "Customers who pay yearly save 20%."),
    ],
)
def test_second_person(sentence: str, spoken: str) -> None:
    assert second_person(sentence) == spoken


def test_a_sentence_starting_with_a_pronoun_comes_with_the_one_it_refers_to() -> None:
    evidence = Evidence(
        "It includes 100 GB of storage per user",
        "doc",
        "doc#0",
        lead="The Team plan costs $8 per user per month.",
    )
    assert extractive_sentences([evidence]) == [
        "The Team plan costs $8 per user per month.",
        "It includes 100 GB of storage per user.",
    ]
