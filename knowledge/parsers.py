"""Document parsers: bytes of a given content type -> ``ParsedDocument`` (title + sections with headings)."""

from __future__ import annotations

import io
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

from knowledge.errors import ParseError, UnsupportedContentType

log = logging.getLogger(__name__)

_EXTENSIONS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}


@dataclass
class Section:
    heading: str | None
    paragraphs: list[str] = field(default_factory=list)


@dataclass
class ParsedDocument:
    title: str | None
    sections: list[Section]

    @property
    def text(self) -> str:
        return "\n\n".join(p for s in self.sections for p in s.paragraphs)


def guess_content_type(filename: str, declared: str | None = None) -> str:
    """Content type from the file extension, else the declared type (multipart headers are often generic)."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if declared and declared != "application/octet-stream":
        return declared.split(";")[0].strip().lower()
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def parse(data: bytes, content_type: str) -> ParsedDocument:
    """Parse ``data``; raises ``ParseError`` with the reason when the document is broken or empty."""
    kind = content_type.split(";")[0].strip().lower()
    parser = _PARSERS.get(kind)
    if parser is None:
        raise UnsupportedContentType(f"no parser for content type {kind!r}; supported: {sorted(_PARSERS)}")
    doc = parser(data)
    if not any(p.strip() for s in doc.sections for p in s.paragraphs):
        raise ParseError(f"{kind} document has no text")
    return doc


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _paragraphs(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def parse_text(data: bytes) -> ParsedDocument:
    return ParsedDocument(title=None, sections=[Section(None, _paragraphs(_decode(data)))])


def parse_markdown(data: bytes) -> ParsedDocument:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(_decode(data))
    sections = [Section(None)]
    title: str | None = None
    in_heading = False
    for tok in tokens:
        if tok.type == "heading_open":
            in_heading = True
        elif tok.type == "heading_close":
            in_heading = False
        elif tok.type == "inline" and in_heading:
            title = title or tok.content
            sections.append(Section(tok.content.strip()))
        elif tok.type == "inline" and tok.content.strip():
            sections[-1].paragraphs.append(re.sub(r"\s+", " ", tok.content).strip())
        elif tok.type in ("fence", "code_block") and tok.content.strip():
            sections[-1].paragraphs.append(tok.content.strip())
    return ParsedDocument(title=title, sections=[s for s in sections if s.paragraphs])


_BLOCKS = ["p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "div"]
_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def parse_html(data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav"]):
        tag.decompose()
    _rows_as_paragraphs(soup)
    title = soup.title.get_text(strip=True) if soup.title else None
    sections = [Section(None)]
    for el in soup.find_all(_HEADINGS + _BLOCKS):
        if el.name in _HEADINGS:
            sections.append(Section(el.get_text(" ", strip=True)))
        elif el.find(_HEADINGS + _BLOCKS) is None:  # leaf blocks only: no text counted twice
            text = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s+", " ", el.get_text(" ", strip=True)))
            if text:
                sections[-1].paragraphs.append(text)
    if not any(s.paragraphs for s in sections):
        body = soup.body or soup
        sections = [Section(None, _paragraphs(body.get_text("\n\n")))]
    return ParsedDocument(title=title, sections=[s for s in sections if s.paragraphs])


def _rows_as_paragraphs(soup: Any) -> None:
    """Each row of a data table becomes one paragraph that says what its cells are: "Family suite: Sleeps 4,
    Weeknight $279, Weekend night $329." (cell by cell, "$279" would be a sentence of its own that answers
    nothing). A layout table, whose cells hold headings or paragraphs, is left as it is."""
    for table in reversed(soup.find_all("table")):  # innermost first
        if table.find(["table", *_HEADINGS, "p", "div", "ul", "ol"]) is not None:
            continue
        rows = [[_cell_text(c) for c in tr.find_all(["th", "td"])] for tr in table.find_all("tr")]
        rows = [r for r in rows if any(r)]
        header = rows[0] if rows and table.find("tr").find("td") is None else None
        body = rows[1:] if header else rows
        sentences = [_row_sentence(r, header) for r in body]
        replacement = soup.new_tag("div")
        if table.caption and table.caption.get_text(strip=True):
            caption = soup.new_tag("p")
            caption.string = table.caption.get_text(" ", strip=True)
            replacement.append(caption)
        for sentence in sentences:
            paragraph = soup.new_tag("p")
            paragraph.string = sentence
            replacement.append(paragraph)
        table.replace_with(replacement)


def _cell_text(cell: Any) -> str:
    return re.sub(r"\s+", " ", cell.get_text(" ", strip=True)).strip()


def _row_sentence(cells: list[str], header: list[str] | None) -> str:
    if header and len(header) == len(cells):
        rest = [f"{h} {c}".strip() for h, c in zip(header[1:], cells[1:], strict=True) if c]
    else:
        rest = [c for c in cells[1:] if c]
    sentence = f"{cells[0]}: {', '.join(rest)}" if rest else cells[0]
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


def parse_pdf(data: bytes) -> ParsedDocument:
    """Headings and paragraphs from the layout (``knowledge.pdf_layout``); a PDF whose text runs carry no
    positions falls back to a section of plain text per page."""
    from pypdf import PdfReader

    from knowledge.pdf_layout import blocks, page_lines

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        meta_title = reader.metadata.title if reader.metadata else None
        laid_out = blocks([page_lines(page) for page in reader.pages])
        pages = [] if laid_out else [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types for broken files
        raise ParseError(f"broken PDF: {type(exc).__name__}: {exc}") from exc
    if laid_out:
        return ParsedDocument(title=meta_title, sections=_sections_of(laid_out))
    if not any(p.strip() for p in pages):
        raise ParseError("PDF has no extractable text (scanned images need OCR, which is not supported)")
    sections = [Section(f"page {i + 1}", _paragraphs(text)) for i, text in enumerate(pages)]
    return ParsedDocument(title=meta_title, sections=[s for s in sections if s.paragraphs])


def _sections_of(laid_out: list[Any]) -> list[Section]:
    sections = [Section(None)]
    for block in laid_out:
        if block.heading:
            sections.append(Section(block.text))
        else:
            sections[-1].paragraphs.append(block.text)
    return [s for s in sections if s.paragraphs]


_PARSERS = {
    "text/plain": parse_text,
    "text/markdown": parse_markdown,
    "text/x-markdown": parse_markdown,
    "text/html": parse_html,
    "application/pdf": parse_pdf,
}
