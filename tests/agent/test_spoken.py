"""Spoken-style post-processing of model text."""

from __future__ import annotations

from agent.spoken import SpokenTextFilter, to_spoken


def test_markdown_is_stripped_and_numbers_spoken() -> None:
    text = (
        "## Prices\n- **Basic**: $1,200 a year (10% off)\n- See [the site](https://x.io) for 2-3 options 🙂\n"
    )
    assert to_spoken(text).strip() == (
        "Prices Basic: 1200 dollars a year (10 percent off) See the site for 2 to 3 options"
    )


def test_streaming_filter_matches_whole_text_conversion() -> None:
    text = "1. First *step* & then [link](http://a.b/c d) costs €5.\n2. Second, e.g. `code`."
    for size in (1, 2, 3, 7):
        f = SpokenTextFilter()
        out = "".join(f.push(text[i : i + size]) for i in range(0, len(text), size)) + f.flush()
        assert out.split() == to_spoken(text).split(), size
    assert "*" not in out and "`" not in out and "http" not in out
