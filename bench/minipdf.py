"""A minimal PDF writer (Helvetica text, word-wrapped pages) so a PDF knowledge base can be made from a committed
text source at bench or test time: no PDF library is installed, and a committed binary would hide its content.

A blank line in the source starts a new paragraph; a line without a final full stop is set as a bold heading.
"""

from __future__ import annotations

import textwrap

_PAGE_W, _PAGE_H, _MARGIN = 612, 792, 72
_BODY, _HEAD, _LEADING = 11, 13, 15
_WRAP = 88  # characters per line of 11 pt Helvetica in a 468 pt text width


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _layout(source: str) -> list[list[tuple[str, str]]]:
    """Pages of (font, line) pairs; an empty line string is a paragraph gap."""
    pages: list[list[tuple[str, str]]] = [[]]
    room = (_PAGE_H - 2 * _MARGIN) // _LEADING
    for paragraph in [p.strip() for p in source.split("\n\n") if p.strip()]:
        text = " ".join(paragraph.split())
        heading = not text.endswith((".", ":", "?", "!"))
        lines = [("F2", text)] if heading else [("F1", line) for line in textwrap.wrap(text, _WRAP)]
        if len(pages[-1]) + len(lines) + 1 > room:
            pages.append([])
        pages[-1].extend([*lines, ("F1", "")])
    return pages


def _content(lines: list[tuple[str, str]]) -> bytes:
    out = [f"BT {_LEADING} TL {_MARGIN} {_PAGE_H - _MARGIN} Td"]
    for font, line in lines:
        size = _HEAD if font == "F2" else _BODY
        out.append(f"/{font} {size} Tf ({_escape(line)}) Tj T*" if line else "T*")
    out.append("ET")
    return "\n".join(out).encode("latin-1")


def text_to_pdf(source: str, title: str | None = None) -> bytes:
    """``source`` laid out as a PDF document (US Letter, Helvetica); ``title`` goes into the document info."""
    pages = _layout(source)
    objects: list[bytes] = []
    kids = []
    for i, lines in enumerate(pages):
        stream = _content(lines)
        page_id, content_id = 6 + 2 * i, 7 + 2 * i
        kids.append(f"{page_id} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_W} {_PAGE_H}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {content_id} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    info = f"<< /Title ({_escape(title or '')}) >>".encode("latin-1")
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        info,
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate([*head, *objects], start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(body)
    body += f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    body += f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return body
