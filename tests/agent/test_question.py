"""Reading a caller's turn: small talk or question, the kind of fact asked for, follow-ups, parts."""

from __future__ import annotations

import pytest

from agent.question import (
    analyse,
    answer_types,
    classify,
    content_terms,
    question_focus,
    small_talk_kind,
    stem,
    term_groups,
    weekdays,
)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hi there!", "small_talk"),
        ("Thanks, that's really helpful.", "small_talk"),
        ("Okay, perfect, thank you.", "small_talk"),
        ("Good morning, how are you today?", "small_talk"),
        ("Hi, how much is a battery?", "question"),
        ("Do you take checks", "question"),
        ("I have a cracked screen.", "statement"),
    ],
)
def test_classify(text: str, kind: str) -> None:
    assert classify(text) == kind


def test_small_talk_kinds() -> None:
    assert small_talk_kind("Hey, good afternoon.") == "greeting"
    assert small_talk_kind("How are you doing?") == "how_are_you"
    assert small_talk_kind("Cheers, that's great.") == "thanks"
    assert small_talk_kind("Great, all clear.") == "acknowledge"
    assert small_talk_kind("My name is Alice.") == "introduction"


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("How much is a battery?", {"money"}),
        ("How long does a repair take?", {"duration"}),
        ("When are you open on Mondays?", {"time"}),
        ("What time do you open on Mondays?", {"time", "clock"}),
        ("What's your phone number?", {"phone"}),
        ("What email address can I write to?", {"email"}),
        ("Who is your orthodontist?", {"name"}),
        ("Who do I talk to about a quote?", {"contact"}),
        ("Is there a discount for students?", {"percent"}),
        ("Can I pay with Apple Pay?", set()),
    ],
)
def test_answer_types(text: str, types: set[str]) -> None:
    assert answer_types(text) == types


def test_follow_up_borrows_the_topic_but_not_its_question_words() -> None:
    first = analyse("How much is a battery replacement?")
    follow = analyse("And how long does that take?", first)
    assert follow.topic is first and follow.answer_types == {"duration"}
    assert "battery" in follow.search_text and "much" not in follow.search_text
    assert analyse("Who is your orthodontist?", first).topic is None  # a question of its own
    sundays = analyse("And on Sundays?", analyse("When are you open on Saturday?"))
    assert sundays.answer_types == {"time"} and "saturday" in sundays.search_text


def test_a_short_question_with_a_subject_of_its_own_is_no_follow_up() -> None:
    # Found on the SIP bench: after "Can I pay with Apple Pay?", "Where's your shop?" (three words, as
    # Whisper writes it) was taken as elliptic and answered with the payment methods again.
    paying = analyse("Can I pay with Apple Pay?")
    for text in ("Where's your shop?", "Where is your shop?", "When's checkout?"):
        question = analyse(text, paying)
        assert question.topic is None, text
    assert analyse("Where's your shop?").answer_types == {"address"}
    assert "where's" not in analyse("Where's your shop?").terms
    assert analyse("How much?", paying).topic is paying  # no subject of its own: still a follow-up
    assert analyse("Sundays?", analyse("When are you open on Saturday?")).topic is not None


def test_two_part_questions_are_split() -> None:
    q = analyse("How much is a water damage diagnosis, and how long do water damage repairs take?")
    assert [p.answer_types for p in q.parts] == [{"money"}, {"duration"}]
    q = analyse("How much is a charging port repair, and how long is it guaranteed?")
    assert len(q.parts) == 2 and q.parts[1].topic is q.parts[0]  # "it": the later part leans on the first
    q = analyse("Do you take Cigna? Do you take Aetna insurance?")
    assert [p.text for p in q.parts] == ["Do you take Cigna?", "Do you take Aetna insurance?"]
    # A question that leans on the one before it is no question of its own: the turn is asked as a whole.
    assert analyse("What happens if I miss my appointment? Is there a charge?").parts == []
    assert analyse("Can I bring a friend? How much is that?").parts == []
    assert analyse("Do you take Apple Pay and Google Pay?").parts == []


def test_stems_and_weekday_ranges() -> None:
    assert {stem("charged"), stem("charge"), stem("charges")} == {"charg"}
    assert stem("replacement") == stem("replace") and stem("Sundays".lower()) == "sunday"
    assert weekdays("Monday to Thursday: 8 am to 5 pm") == {"monday", "tuesday", "wednesday", "thursday"}


def test_the_asking_part_of_a_turn_that_sets_the_scene_first() -> None:
    assert question_focus("I dropped my phone in the sink. How much is it to look at it?") == (
        "How much is it to look at it?"
    )
    assert question_focus("Do you see young kids? My daughter is four.") == "Do you see young kids?"
    assert question_focus("I bought a kettle last week and it broke, can I still return it?") == (
        "can I still return it?"
    )
    assert analyse("If I leave my laptop with you, when will it be ready?").focus == "when will it be ready?"
    # The whole turn asks: no separate focus (a two-part question keeps both parts).
    assert question_focus("What time do you close?") == ""
    assert question_focus("How much is the Team plan, and how much storage does it get?") == ""
    assert question_focus("Can I bring a friend? How much is that?") == ""


def test_synonyms_are_grouped_with_the_word_they_stand_for() -> None:
    assert term_groups("Can I get a courtesy car?") == [("courtesy", "loaner"), ("car",)]
    assert content_terms("Can I get a courtesy car?") == ["courtesy", "loaner", "car"]
    assert "trial" in content_terms("Can I try it before I pay?")  # what documents call a free trial
    # Fillers and "mine" say nothing about what is asked.
    assert content_terms("Roughly what's the yearly price?") == ["yearly", "annual", "pric", "cost"]
    assert "min" not in content_terms("Can I get a loaner while mine is in the shop?")
