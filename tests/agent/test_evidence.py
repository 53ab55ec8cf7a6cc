"""Evidence selection details (pure functions): what counts as an address."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from agent.evidence import (
    Evidence,
    EvidenceSelector,
    SelectionFeatures,
    SelectionWeights,
    answers_type,
)
from agent.facts import extract_facts
from agent.question import analyse
from tests.agent.fakes import FakeChunk


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


def test_a_synonym_found_counts_as_the_word_the_caller_said() -> None:
    # "courtesy car" is what the document calls a loaner: the caller's word and its synonym are one term, so
    # the loaner sentence holds every term asked for (it held 40 % of them when each form weighed apart).
    question = analyse("Can I get a courtesy car?")
    lexical = EvidenceSelector._lexical(question, ["Loaner cars are available.", "We close at 6 pm."])
    assert lexical == [pytest.approx(1.0), 0.0]


def test_a_weekday_asked_about_is_a_specific_detail_of_an_hours_question() -> None:
    question = analyse("What time do you close on Saturday night?")
    saturday = "The gym is open from 7 am to 9 pm on Saturdays and Sundays."
    weekdays = "The gym is open from 5 am to 11 pm Monday to Friday."
    assert EvidenceSelector._specific_score(question, extract_facts(saturday), saturday) == 1.0
    assert EvidenceSelector._specific_score(question, extract_facts(weekdays), weekdays) == 0.0
    other = analyse("Is there a yoga class on Tuesday?")  # not asking for hours: no bonus
    assert EvidenceSelector._specific_score(other, extract_facts(weekdays), weekdays) == 0.0


def test_a_sentence_whose_opening_clause_leans_on_the_one_before_brings_it_along() -> None:
    chunk = FakeChunk(
        "The Business plan comes with a 99.9% uptime guarantee. If we miss it in a month, you get a service "
        "credit of 10%.",
        1.0,
        "plans#0",
        "plans",
    )
    candidates = EvidenceSelector._candidates([chunk])
    assert candidates[1].lead == "The Business plan comes with a 99.9% uptime guarantee."
    assert candidates[0].lead == ""


def test_the_margin_is_taken_over_a_rival_answer_not_over_the_same_sentence_with_its_lead() -> None:
    lead = "The Business plan costs $15 per user."
    candidates = [
        Evidence(lead, "plans", "plans#0"),
        Evidence("It includes unlimited storage.", "plans", "plans#0", lead=lead),
        Evidence("The Team plan costs $8 per user.", "plans", "plans#0"),
    ]
    features = SelectionFeatures(
        analyse("How much is Business per seat?"), candidates, [0.6, 0.59, 0.2], [0.0] * 3, [0.0] * 3,
        [0.0] * 3, 1.0, [],
    )  # fmt: skip
    weights = SelectionWeights(semantic=1.0, lexical=0.0, answer_type=0.0, margin=0.5)
    assert EvidenceSelector().rank(features, weights).confidence == pytest.approx(0.6 + 0.5 * (0.6 - 0.2))


class _TableEmbedder:
    """Unit vectors looked up by text (a fake: what MiniLM would say is set by the test)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.array([self.table[t] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def test_meaning_is_also_scored_on_the_asking_part_of_a_turn_alone() -> None:
    turn = "I dropped my phone in the sink. How much is it to look at it?"
    sentence = "A water damage diagnosis costs $35."
    embedder = _TableEmbedder(
        {turn: [1.0, 0.0], "How much is it to look at it?": [0.8, 0.6], sentence: [0.0, 1.0]}
    )
    selector = EvidenceSelector(embedder)
    features = await selector.features(analyse(turn), [FakeChunk(sentence, 1.0, "faq#0", "faq")])
    assert features.semantic == [pytest.approx(0.6)]  # the whole turn's cosine is 0
