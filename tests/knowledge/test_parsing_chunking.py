"""Parsers (text, Markdown, HTML, PDF) and chunking: pure functions."""

from __future__ import annotations

import itertools

import pytest

from knowledge.chunking import chunk_document, count_tokens
from knowledge.errors import ParseError, UnsupportedContentType
from knowledge.parsers import ParsedDocument, Section, guess_content_type, parse


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with ``text`` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


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
