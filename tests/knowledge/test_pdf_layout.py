"""PDF structure from the layout (``knowledge.pdf_layout``): headings, paragraphs, pages."""

from __future__ import annotations

from knowledge.parsers import parse
from tests.knowledge.pdfs import laid_out_pdf


def sections(pdf: bytes) -> list[tuple[str | None, list[str]]]:
    return [(s.heading, s.paragraphs) for s in parse(pdf, "application/pdf").sections]


def test_a_heading_is_not_glued_to_the_sentence_after_it() -> None:
    """Regression: pypdf's text of such a page is one run of lines, so the heading "Billing" became the
    first words of "Billing Monthly plans are charged..." and the agent read it aloud."""
    page = [
        ("F2", 13, 720, "Billing"),
        ("F1", 11, 690, "Monthly plans are charged on the same day each month as the day you"),
        ("F1", 11, 675, "subscribed."),
        ("F1", 11, 645, "Annual plans are charged once a year."),
        ("F2", 13, 615, "Refunds and cancellation"),
        ("F1", 11, 585, "Monthly plans are not refunded."),
    ]
    assert sections(laid_out_pdf([page])) == [
        (
            "Billing",
            [
                "Monthly plans are charged on the same day each month as the day you subscribed.",
                "Annual plans are charged once a year.",
            ],
        ),
        ("Refunds and cancellation", ["Monthly plans are not refunded."]),
    ]


def test_a_larger_heading_in_the_body_font_and_a_paragraph_across_pages() -> None:
    first = [
        ("F3", 16, 720, "Opening hours"),
        ("F3", 11, 700, "We open at 8 am on weekdays and close at 6 pm, except on the days before a public"),
    ]
    second = [
        ("F3", 11, 740, "holiday, when we close at 3 pm."),
        ("F3", 11, 712, "Out-of-"),  # a word broken at its hyphen
        ("F3", 11, 698, "hours calls go to the emergency line."),
    ]
    assert sections(laid_out_pdf([first, second])) == [
        (
            "Opening hours",
            [
                (
                    "We open at 8 am on weekdays and close at 6 pm, except on the days before a public "
                    "holiday, when we close at 3 pm."
                ),
                "Out-of-hours calls go to the emergency line.",
            ],
        )
    ]


def test_a_pdf_without_typographic_structure_keeps_its_paragraphs() -> None:
    page = [
        ("F1", 11, 720, "Short line without a full stop"),
        ("F1", 11, 705, "continues the sentence here."),
        ("F1", 11, 680, "A second paragraph after a wider gap."),
    ]
    assert sections(laid_out_pdf([page])) == [
        (
            None,
            [
                "Short line without a full stop continues the sentence here.",
                "A second paragraph after a wider gap.",
            ],
        )
    ]


def test_a_bold_sentence_is_not_a_heading() -> None:
    page = [("F2", 11, 720, "Prices include tax."), ("F1", 11, 700, "Payment is due on arrival.")]
    assert sections(laid_out_pdf([page])) == [(None, ["Prices include tax.", "Payment is due on arrival."])]


def test_double_spaced_lines_of_one_sentence_stay_one_paragraph() -> None:
    page = [
        ("F1", 11, 720, "Loaner cars are available for repairs that take"),
        ("F1", 11, 696, "longer than 4 hours."),
        ("F1", 11, 672, "Monday to Friday: 7:30 am to 6 pm"),
        ("F1", 11, 648, "Saturday: 8 am to 2 pm"),
    ]
    assert sections(laid_out_pdf([page])) == [
        (
            None,
            [
                "Loaner cars are available for repairs that take longer than 4 hours.",
                "Monday to Friday: 7:30 am to 6 pm",
                "Saturday: 8 am to 2 pm",
            ],
        )
    ]
