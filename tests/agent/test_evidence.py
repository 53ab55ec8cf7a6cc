"""Evidence selection details (pure functions): what counts as an address."""

from __future__ import annotations

import pytest

from agent.evidence import answers_type
from agent.facts import extract_facts


@pytest.mark.parametrize(
    "sentence",
    [
        "Northside Auto Care is a garage at 1290 Industrial Parkway in Springfield.",  # regression: "Parkway"
        "We are at 45 Maple Street, Unit 2, in Burlington.",
        "The inn is at 9 Quay Road in Mystic.",
        "Find us at 12 Harbour Place.",
        "Our office is at 300 Commerce Court, Suite 4.",
        "The depot is at 7100 State Highway 9.",
    ],
)
def test_street_addresses_answer_where_questions(sentence: str) -> None:
    assert answers_type(extract_facts(sentence), sentence, "address")


@pytest.mark.parametrize(
    "sentence", ["We close at 6 pm on weekdays.", "A tire rotation costs $25.", "Call us on (217) 555-0138."]
)
def test_sentences_without_a_street_do_not(sentence: str) -> None:
    assert not answers_type(extract_facts(sentence), sentence, "address")
