"""Sentence boundaries of passages and of streamed model text (pure logic)."""

from __future__ import annotations

from agent.sentences import SentenceBuffer, split_sentences


def test_split_sentences_keeps_titles_times_and_list_items() -> None:
    text = (
        "Dr. Maria Okafor sees patients every weekday. We close at 5 p.m. Call us at 8 a.m. on Monday."
        "\n\n- Sunday: closed.\n- **Saturday**: 10 am to 5 pm\nThe price is $12.50. It's free."
    )
    assert split_sentences(text) == [
        "Dr. Maria Okafor sees patients every weekday.",
        "We close at 5 p.m.",
        "Call us at 8 a.m. on Monday.",
        "Sunday: closed.",
        "Saturday: 10 am to 5 pm",
        "The price is $12.50.",
        "It's free.",
    ]


def test_sentence_buffer_releases_complete_sentences_only() -> None:
    buffer = SentenceBuffer()
    out: list[str] = []
    text = "Sure! The battery costs $69. Dr. Smith will see you. It takes 45 minutes"
    for word in text.split(" "):
        out += buffer.push(word + " ")
    assert out == ["Sure!", "The battery costs $69.", "Dr. Smith will see you."]
    assert buffer.flush() == ["It takes 45 minutes"]
