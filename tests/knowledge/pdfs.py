"""PDFs made at test time with text placed line by line (no PDF library is installed for writing).

``laid_out_pdf(pages)``: each page a list of ``(font, size, y, text)``; font "F1" is Helvetica, "F2"
Helvetica-Bold, "F3" Times-Roman; ``y`` in points from the bottom of a US Letter page."""

from __future__ import annotations

Line = tuple[str, float, float, str]
_FONTS = b"/F1 5 0 R /F2 6 0 R /F3 7 0 R"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def laid_out_pdf(pages: list[list[Line]]) -> bytes:
    n = len(pages)
    kids = " ".join(f"{8 + 2 * i} 0 R" for i in range(n)).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
        b"<< >>",  # unused (object numbers kept stable)
        b"<< >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>",
    ]
    for i, lines in enumerate(pages):
        ops = [
            f"BT /{font} {size} Tf 1 0 0 1 72 {y} Tm ({_escape(text)}) Tj ET" for font, size, y, text in lines
        ]
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << " % (9 + 2 * i) + _FONTS + b" >> >> >>"
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
