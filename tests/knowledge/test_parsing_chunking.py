"""Parsers (text, Markdown, HTML, PDF) and chunking: pure functions."""

from __future__ import annotations

import itertools

import pytest

from knowledge.chunking import chunk_document, count_tokens
from knowledge.errors import ParseError, UnsupportedContentType
from knowledge.parsers import ParsedDocument, Section, guess_content_type, parse
from tests.knowledge.pdfs import laid_out_pdf


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica, with a correct xref table."""
    return laid_out_pdf([[("F1", 12, 720, text)]])


def test_markdown_sections_follow_headings() -> None:
    doc = parse(
        b"# Guide\n\nIntro text.\n\n## Returns\n\nReturn within *30 days*.\n\n- item one\n", "text/markdown"
    )
    assert doc.title == "Guide"
    assert [(s.heading, s.paragraphs) for s in doc.sections] == [
        ("Guide", ["Intro text."]),
        ("Returns", ["Return within *30 days*.", "item one"]),
    ]


def test_html_drops_scripts_and_keeps_leaf_blocks_once() -> None:
    html = b"""<html><head><title>Shop</title><script>var x = 'secret';</script></head><body>
      <h1>Opening hours</h1><div><p>We open at <b>nine</b>.</p><ul><li>Closed Sundays</li></ul></div>
      <style>p {}</style></body></html>"""
    doc = parse(html, "text/html")
    assert doc.title == "Shop"
    assert [(s.heading, s.paragraphs) for s in doc.sections] == [
        ("Opening hours", ["We open at nine.", "Closed Sundays"])
    ]
    assert "secret" not in doc.text


def test_html_table_rows_become_sentences_that_name_their_cells() -> None:
    """Regression: each cell was a paragraph of its own ("$259"), a sentence that answers nothing."""
    html = b"""<html><body><h2>Room rates</h2>
      <table><caption>Per night</caption>
        <thead><tr><th>Room</th><th>Sleeps</th><th>Weeknight</th><th>Weekend night</th></tr></thead>
        <tbody><tr><td>Standard queen</td><td>2</td><td>$149</td><td>$189</td></tr>
               <tr><td>Family suite</td><td>4</td><td>$279</td><td></td></tr></tbody>
      </table>
      <table><tr><td>Parking</td><td>$18 per night</td></tr></table>
      <table><tr><td><h3>Layout</h3><p>A layout table keeps its blocks.</p></td></tr></table>
    </body></html>"""
    assert [(s.heading, s.paragraphs) for s in parse(html, "text/html").sections] == [
        (
            "Room rates",
            [
                "Per night",
                "Standard queen: Sleeps 2, Weeknight $149, Weekend night $189.",
                "Family suite: Sleeps 4, Weeknight $279.",
                "Parking: $18 per night.",
            ],
        ),
        ("Layout", ["A layout table keeps its blocks."]),
    ]


def test_pdf_text_is_extracted() -> None:
    doc = parse(minimal_pdf("The warranty lasts two years."), "application/pdf")
    assert "warranty lasts two years" in doc.text


@pytest.mark.parametrize("data", [b"%PDF-1.4 this is not a pdf", b"", minimal_pdf("x")[:150]])
def test_broken_pdf_raises_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError, match="PDF"):
        parse(data, "application/pdf")


def test_unsupported_and_empty() -> None:
    with pytest.raises(UnsupportedContentType, match="image/png"):
        parse(b"\x89PNG", "image/png")
    with pytest.raises(ParseError, match="no text"):
        parse(b"  \n\n ", "text/plain")


def test_guess_content_type() -> None:
    assert guess_content_type("a.MD") == "text/markdown"
    assert guess_content_type("a.pdf", "application/octet-stream") == "application/pdf"
    assert guess_content_type("blob", "text/html; charset=utf-8") == "text/html"


def test_chunks_respect_limits_headings_and_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(60)]
    doc = ParsedDocument("t", [Section("A", [" ".join(sentences)]), Section("B", ["Short section."])])
    chunks = chunk_document(doc, max_tokens=50, overlap_tokens=10)
    assert all(count_tokens(c.text) <= 50 for c in chunks)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].heading == "B" and chunks[-1].text == "Short section."
    a_chunks = [c for c in chunks if c.heading == "A"]
    assert len(a_chunks) > 3
    for prev, nxt in itertools.pairwise(a_chunks):
        last_sentence = prev.text.split("\n\n")[-1]
        assert nxt.text.startswith(last_sentence)  # overlap carries whole sentences
    joined = " ".join(c.text for c in a_chunks)
    assert all(s in joined for s in sentences)  # nothing lost


def test_long_sentence_without_punctuation_is_split() -> None:
    doc = ParsedDocument(None, [Section(None, ["word " * 500])])
    chunks = chunk_document(doc, max_tokens=100, overlap_tokens=0)
    assert len(chunks) >= 5 and all(count_tokens(c.text) <= 100 for c in chunks)
