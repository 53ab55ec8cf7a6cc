"""The check every generated sentence passes before it is spoken (``answer_mode`` "verified", model small
talk): its facts must be in the evidence, the conversation or the persona, and not recombined across them."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.facts import Fact, FactIndex, extract_facts
from agent.question import content_terms

_CLAUSE = re.compile(
    r"\s*(?:;|,?\s+(?:and|but|or|while|whereas)\s+|,\s+(?=(?:which|where|so|then)\b))\s*", re.IGNORECASE
)
_GENERIC_TERMS = frozenset({"cost", "pric", "charg", "fee", "pay", "free", "per", "about", "around", "only"})


class SentenceCheck:
    """The check a generated sentence must pass before it is spoken. Every fact must be supported by the
    sources, and in each clause the facts must come from ONE source that also holds the clause's subject
    words (those any source knows): a tiny model recombines true pieces ("418" from the address with "Elm Lane" from the parking line;
    the Business price for the Team plan; the Samsung screen price for a charging port).

    ``sources``: texts each of which may back a clause alone (evidence sentences, the caller's words, the
    persona); ``context``: texts that may supply names only (the agent's own earlier lines).
    """

    def __init__(self, sources: Iterable[str], context: Iterable[str] = ()) -> None:
        sources = list(sources)
        self._each = [(FactIndex([text]), set(content_terms(text))) for text in sources]
        self._known_terms = set().union(*(terms for _, terms in self._each)) if self._each else set()
        self._all = FactIndex([*sources, *context])

    def unsupported(self, sentence: str) -> list[Fact]:
        """The facts that fail (unsupported ones, else those of the first clause no single source backs);
        empty when the sentence may be spoken."""
        missing = [f for f in extract_facts(sentence) if not self._all.supports(f)]
        if missing:
            return missing
        for clause in _CLAUSE.split(sentence):
            facts = extract_facts(clause)
            # Names alone may come from anywhere; with a number, time or amount they must come together.
            if any(f.kind != "name" for f in facts) and not self._one_source_backs(clause, facts):
                return facts
        return []

    def _one_source_backs(self, clause: str, facts: list[Fact]) -> bool:
        fact_words = set(content_terms(" ".join(f.text for f in facts)))
        subject = set(content_terms(clause)) - fact_words - _GENERIC_TERMS
        anchor = subject & self._known_terms  # subject words the sources know; others cannot anchor
        # "The warranty is 45 minutes": 45 minutes is a repair time; the source that says it must also be
        # about every known subject word of the clause (here "warranty").
        return any(all(index.supports(f) for f in facts) and anchor <= terms for index, terms in self._each)
