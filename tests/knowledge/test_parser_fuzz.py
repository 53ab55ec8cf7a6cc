"""Upload parsers on hostile documents (Hypothesis): every content type the upload endpoint accepts, fed
arbitrary bytes, mangled Markdown/HTML and byte-flipped PDFs. Each returns a document with text or raises
``ParseError`` (the endpoint's 4xx with the reason); any other exception would be a 500 for an upload."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowledge.errors import ParseError
from knowledge.parsers import _PARSERS, parse
from tests.knowledge.test_parsing_chunking import minimal_pdf

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTENT_TYPES = sorted(_PARSERS)
PDF = minimal_pdf("Opening hours are nine to five on weekdays.")
MARKUP = st.sampled_from(
    ["# ", "## ", "<h1>", "</h1>", "<p>", "</p>", "<script>", "<!--", "-->", "<![CDATA[", "&amp;", "&#0;",
     "```", "\n", "\n\n", "<", ">", "*", "[x](", ")", "\x00", "\ufeff", "<title>", "<body>"]
)


def _parse_or_error(data: bytes, content_type: str) -> None:
    try:
        doc = parse(data, content_type)
    except ParseError as exc:
        assert str(exc), "an upload error needs a reason"
        return
    assert doc.text.strip()


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@FUZZ
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes(content_type: str, data: bytes) -> None:
    _parse_or_error(data, content_type)


@pytest.mark.parametrize("content_type", ["text/markdown", "text/html", "text/plain"])
@FUZZ
@given(parts=st.lists(MARKUP | st.text(max_size=20), max_size=40))
def test_mangled_markup(content_type: str, parts: list[str]) -> None:
    _parse_or_error("".join(parts).encode("utf-8", "surrogatepass"), content_type)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, len(PDF) - 1), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.integers(0, len(PDF)))
def test_damaged_pdf(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(PDF)
    for at, value in flips:
        data[at] = value
    _parse_or_error(bytes(data[: max(cut, 1)]), "application/pdf")
