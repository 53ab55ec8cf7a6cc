"""``knowledge.cli``: ingest files from disk, then search, on the embedded store."""

from __future__ import annotations

from pathlib import Path

from knowledge.cli import format_hits, ingest_paths, search
from knowledge.config import KnowledgeConfig

DATA = Path(__file__).parent / "data"


def test_ingest_paths_then_search(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = KnowledgeConfig(embedded_path=str(tmp_path / "kb.sqlite3"))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    records = ingest_paths([DATA / "poems.md", tmp_path / "docs"], cfg)
    by_status = {r.doc_id.rsplit("/", 1)[-1]: r.status for r in records}
    assert by_status == {"poems.md": "ready", "broken.pdf": "failed"}
    assert "ingest" in capsys.readouterr().err  # tqdm progress bar

    hits = search("a statue of a forgotten king in the sand", cfg, k=3)
    assert hits[0].heading == "Ozymandias"
    assert "Ozymandias" in format_hits(hits)
    # Re-ingesting the same file updates it instead of duplicating its chunks.
    ingest_paths([DATA / "poems.md"], cfg)
    assert len({h.source_id for h in search("Ozymandias", cfg, k=10, mode="fulltext")}) == 1
