"""Document parsers: bytes of a given content type -> ``ParsedDocument`` (title + sections with headings)."""

from __future__ import annotations

import io
import logging
import mimetypes
import re
from dataclasses import dataclass, field

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


def parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except Exception as exc:  # pypdf raises many types for broken files
        raise ParseError(f"broken PDF: {type(exc).__name__}: {exc}") from exc
    if not any(p.strip() for p in pages):
        raise ParseError("PDF has no extractable text (scanned images need OCR, which is not supported)")
    sections = [Section(f"page {i + 1}", _paragraphs(text)) for i, text in enumerate(pages)]
    return ParsedDocument(title=meta_title, sections=[s for s in sections if s.paragraphs])


_PARSERS = {
    "text/plain": parse_text,
    "text/markdown": parse_markdown,
    "text/x-markdown": parse_markdown,
    "text/html": parse_html,
    "application/pdf": parse_pdf,
}
