"""Sentence-level evidence: the sentences of the retrieved passages that answer the caller, ranked, with a
confidence that decides between answering and saying "I don't have that information".

A passage is ~200 tokens; a tiny model given three of them picks the wrong number. Given the two or three
sentences that matter (or speaking the best one itself) it cannot. Each sentence is scored on meaning
(embedding cosine to the question, when an embedder is given), on the question's words it holds (weighted by
rarity among the candidates) and on whether it holds the kind of fact asked for (a price for "how much").
"""

from __future__ import annotations

import logging
import math
import re
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agent.config import GroundingConfig
from agent.facts import Fact, extract_facts
from agent.question import AnswerType, Question, content_terms, weekdays
from agent.sentences import split_sentences

log = logging.getLogger(__name__)

# A sentence that leans on the one before: it starts with a pronoun ("It includes 100 GB"), or its opening
# clause does ("If we miss it in a month, you get a credit": "it" is the guarantee named just before).
_PRONOUN_START = re.compile(
    r"^(?:(?:if|when|once|unless|after|before|until|while)\s+(?:we|you|they|i|customers?)\s+\w+\s+)?"
    r"(?:it|its|this|that|these|those|they|their|them|he|his|she|her)\b",
    re.IGNORECASE,
)
# A street address: a house number, one or two words of name, a street type (USPS's common suffixes).
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|way|parkway|pkwy|place|pl|court|ct|"
    "terrace|ter|highway|hwy|square|sq|circle|cir|plaza|plz|quay|trail|trl|pike|turnpike|row|alley|"
    "crescent|close|mews|walk|loop|expressway|freeway|route|rte"
)
_STREET = re.compile(rf"\b\d+\s+\w+(?:\s\w+)?\s(?:{_STREET_TYPES})\b", re.IGNORECASE)
# Capitalised words naming a street ("on Elm Lane"): a place, not the person a "who" question asks for.
_STREET_NAME = re.compile(rf"\b(?:(?-i:[A-Z])[\w'-]*\s+){{1,3}}(?:{_STREET_TYPES})\b", re.IGNORECASE)
_TIME_UNITS = {"second", "minute", "hour", "day", "week", "month", "year"}
_SPECIFIC_TYPES: frozenset[AnswerType] = frozenset({"phone", "email", "url", "address", "contact", "name"})


@runtime_checkable
class SentenceEmbedder(Protocol):
    """Embeds texts as unit-norm vectors (``knowledge``'s embedders fit structurally)."""

    async def embed(self, texts: Sequence[str]) -> Any:  # ndarray of shape (len(texts), dim)
        ...


@dataclass(frozen=True)
class Evidence:
    """One evidence sentence: what the document says, where it is, and how well it answers."""

    sentence: str
    doc_id: str
    source_id: str
    score: float = 0.0
    lead: str = ""  # the previous sentence, when this one starts with a pronoun ("It includes 100 GB")
    heading: str = ""

    @property
    def spoken_text(self) -> str:
        return f"{self.lead} {self.sentence}" if self.lead else self.sentence

    def as_dict(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "source_id": self.source_id, "sentence": self.spoken_text,
                "score": round(self.score, 3)}  # fmt: skip


@dataclass
class EvidenceSelection:
    """Candidates ranked best first; ``answer``: the one or two sentences that answer; ``confidence``: the
    best candidate's score less the penalties for what the question names that no passage mentions (0 with
    no candidates)."""

    candidates: list[Evidence] = field(default_factory=list)
    answer: list[Evidence] = field(default_factory=list)
    confidence: float = 0.0
    coverage: float = 1.0  # share of the question's terms found in the retrieved passages
    unknown_names: list[str] = field(default_factory=list)  # names in the question no passage mentions
    unanswered_parts: int = 0  # parts of a two-part question left without an answer

    def prompt_sentences(self, n: int) -> list[Evidence]:
        """The answer first, then the next best candidates, ``n`` in all."""
        out = list(self.answer)
        out.extend(c for c in self.candidates if c not in out)
        return out[:n]


@dataclass(frozen=True)
class SelectionWeights:
    """Ranking: ``semantic``, ``lexical``, ``answer_type`` weigh a sentence's scores, ``specific_type`` adds
    for holding a contact detail, address or name asked for (a far surer sign than holding "a price").
    Confidence: the best sentence's score less ``coverage`` x (share of question terms absent from every
    passage) and less ``unknown_name`` when the question names something (a brand, a place) no passage
    mentions."""

    semantic: float = 0.5
    lexical: float = 0.4
    answer_type: float = 0.1
    coverage: float = 0.1
    unknown_name: float = 0.0
    specific_type: float = 0.0
    margin: float = 0.0  # x (best score - second best): one sentence standing out is a surer answer


@dataclass
class SelectionFeatures:
    """Everything ranking needs, computed once per question (``EvidenceSelector.rank`` reuses it)."""

    question: Question
    candidates: list[Evidence]
    semantic: list[float]
    lexical: list[float]
    answer_type: list[float]
    specific_type: list[float]
    coverage: float
    unknown_names: list[str]


def _is_heading(sentence: str) -> bool:
    """A short line without final punctuation or facts: a heading of a plain-text or PDF document."""
    return (
        not sentence.rstrip().endswith((".", "!", "?", ":"))
        and len(sentence.split()) <= 6
        and not any(f.kind != "name" for f in extract_facts(sentence))
    )


def answers_type(facts: list[Fact], text: str, wanted: AnswerType) -> bool:
    """Does a sentence with ``facts`` hold the kind of fact the question wants?"""
    kinds = {f.kind for f in facts}
    if wanted == "money":
        return "money" in kinds or "free" in text.lower()
    if wanted == "number":
        return bool(kinds & {"number", "quantity"})
    if wanted == "duration":
        return any(f.kind == "quantity" and f.value.split()[-1] in _TIME_UNITS for f in facts) or bool(
            kinds & {"time"}
        )
    if wanted == "time":
        return bool(kinds & {"time", "date"}) or "closed" in text.lower()
    if wanted == "clock":
        return "time" in kinds
    if wanted == "percent":
        return any(f.kind == "quantity" and f.value.endswith("percent") for f in facts)
    if wanted == "address":
        return bool(_STREET.search(text))
    if wanted == "contact":
        return bool(kinds & {"phone", "email", "url"})
    if wanted == "name":
        places = {w.lower() for m in _STREET_NAME.finditer(text) for w in re.findall(r"[\w'-]+", m.group(0))}
        return any(f.kind == "name" and f.value not in places for f in facts)
    return wanted in kinds  # phone, email, url


_CACHE_SIZE = 20_000
_shared_caches: weakref.WeakKeyDictionary[Any, OrderedDict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def _cache_of(embedder: SentenceEmbedder | None) -> OrderedDict[str, np.ndarray]:
    """The sentence-embedding cache shared by every conversation using ``embedder``."""
    if embedder is None:
        return OrderedDict()
    try:
        return _shared_caches.setdefault(embedder, OrderedDict())
    except TypeError:  # not weak-referenceable: a cache of its own
        return OrderedDict()


class EvidenceSelector:
    """Ranks the sentences of retrieved chunks for one question. Sentence embeddings are cached (LRU, shared
    per embedder): the same passages come back call after call, so their sentences are embedded once."""

    def __init__(
        self,
        embedder: SentenceEmbedder | None = None,
        weights: SelectionWeights = SelectionWeights(),
        max_answer_sentences: int = 2,
        second_sentence_ratio: float = 0.85,
    ) -> None:
        self.embedder = embedder
        self.weights = weights
        self.max_answer_sentences = max_answer_sentences
        self.second_sentence_ratio = second_sentence_ratio
        self._cache = _cache_of(embedder)
        self._cache_size = _CACHE_SIZE

    @classmethod
    def for_config(
        cls, config: GroundingConfig, embedder: SentenceEmbedder | None = None
    ) -> EvidenceSelector:
        weights = SelectionWeights(
            config.semantic_weight,
            config.lexical_weight,
            config.answer_type_weight,
            config.coverage_weight,
            config.unknown_name_weight,
            config.specific_type_weight,
            config.margin_weight,
        )
        return cls(embedder, weights, config.max_answer_sentences, config.second_sentence_ratio)

    async def select(self, question: Question, chunks: Sequence[Any]) -> EvidenceSelection:
        return self.rank(await self.features(question, chunks))

    async def features(self, question: Question, chunks: Sequence[Any]) -> SelectionFeatures:
        candidates = self._candidates(chunks)
        texts = [self._scoring_text(c) for c in candidates]
        semantic = await self._semantic(question, texts) if candidates else []
        facts = [extract_facts(c.spoken_text) for c in candidates]
        typed = [self._type_score(question, f, c.spoken_text) for f, c in zip(facts, candidates, strict=True)]
        specific = [
            self._specific_score(question, f, c.spoken_text) for f, c in zip(facts, candidates, strict=True)
        ]
        passages = " ".join(f"{getattr(c, 'heading', None) or ''} {c.text}" for c in chunks)
        found = set(content_terms(passages))
        coverage = sum(t in found for t in question.terms) / len(question.terms) if question.terms else 1.0
        words = set(re.findall(r"[a-z0-9]+", passages.lower()))
        unknown = [f.text for f in extract_facts(question.text) if f.kind == "name" and f.value not in words]
        return SelectionFeatures(
            question, candidates, semantic, self._lexical(question, texts), typed, specific, coverage, unknown
        )

    def rank(self, f: SelectionFeatures, weights: SelectionWeights | None = None) -> EvidenceSelection:
        """Scores and orders the candidates; picks the answer; computes the confidence."""
        if not f.candidates:
            return EvidenceSelection(coverage=f.coverage, unknown_names=f.unknown_names)
        w = weights or self.weights
        scored = [
            replace(
                c,
                score=w.semantic * f.semantic[i]
                + w.lexical * f.lexical[i]
                + w.answer_type * f.answer_type[i]
                + w.specific_type * f.specific_type[i],
            )
            for i, c in enumerate(f.candidates)
        ]
        scored.sort(key=lambda e: e.score, reverse=True)
        rival = next((c for c in scored[1:] if not _same_statement(scored[0], c)), None)
        margin = scored[0].score - (rival.score if rival else 0.0)
        confidence = (
            scored[0].score
            + w.margin * margin
            - w.coverage * (1 - f.coverage)
            - w.unknown_name * bool(f.unknown_names)
        )
        answer = self._answer(f.question, scored)
        return EvidenceSelection(scored, answer, confidence, f.coverage, f.unknown_names)

    # -- candidates -------------------------------------------------------------------------------------------

    @staticmethod
    def _candidates(chunks: Sequence[Any]) -> list[Evidence]:
        seen: set[str] = set()
        out: list[Evidence] = []
        for chunk in chunks:
            heading = getattr(chunk, "heading", None) or ""
            sentences = split_sentences(chunk.text)
            for i, sentence in enumerate(sentences):
                key = sentence.lower()
                if _is_heading(
                    sentence
                ):  # "Lockers and parking": a plain-text heading, context for what follows
                    heading = sentence
                    continue
                if key in seen or len(sentence) < 3:
                    continue
                seen.add(key)
                lead = sentences[i - 1] if i > 0 and _PRONOUN_START.match(sentence) else ""
                out.append(Evidence(sentence, chunk.doc_id, chunk.source_id, lead=lead, heading=heading))
        return out

    @staticmethod
    def _scoring_text(c: Evidence) -> str:
        head = f"{c.heading}: " if c.heading and not c.heading.lower().startswith("page ") else ""
        return head + c.spoken_text

    # -- scores -----------------------------------------------------------------------------------------------

    async def _semantic(self, question: Question, texts: list[str]) -> list[float]:
        """Cosine of each sentence to the turn, or to its asking part alone when that is closer (a turn that
        sets the scene first: the scene pulls the whole turn's vector away from the answer)."""
        if self.embedder is None or self.weights.semantic == 0:
            return [0.0] * len(texts)
        queries = list(dict.fromkeys([question.search_text, question.focus_search_text]))
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        vectors = np.asarray(await self.embedder.embed([*queries, *missing]), dtype=np.float32)
        for text, vector in zip(missing, vectors[len(queries) :], strict=True):
            self._cache[text] = vector
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        q = vectors[: len(queries)]
        return [max(0.0, float(np.max(q @ self._cache[t]))) for t in texts]

    @staticmethod
    def _lexical(question: Question, texts: list[str]) -> list[float]:
        """Share of the question's term weight found in each sentence (rarer terms weigh more; the topic's
        terms of a follow-up weigh half)."""
        bags = [set(content_terms(t)) for t in texts]
        n = len(bags)
        weights: dict[tuple[str, ...], float] = {}
        for group in question.groups or [(t,) for t in question.terms]:
            df = sum(any(t in bag for t in group) for bag in bags)
            weights[group] = math.log((n + 1) / (df + 0.5))
        for term in question.topic_terms:
            df = sum(term in bag for bag in bags)
            weights.setdefault((term,), 0.5 * math.log((n + 1) / (df + 0.5)))
        total = sum(weights.values())
        if total <= 0:
            return [0.0] * n
        return [sum(w for g, w in weights.items() if any(t in bag for t in g)) / total for bag in bags]

    @staticmethod
    def _specific_score(question: Question, facts: list[Fact], text: str) -> float:
        wanted = question.answer_types & _SPECIFIC_TYPES
        if wanted:
            return float(any(answers_type(facts, text, t) for t in wanted))
        asked = weekdays(question.text) or (weekdays(question.topic.text) if question.topic else set())
        return (
            float(bool(asked & weekdays(text)))
            if asked and question.answer_types & {"time", "clock"}
            else 0.0
        )

    @staticmethod
    def _type_score(question: Question, facts: list[Fact], text: str) -> float:
        """Share of the wanted kinds of fact the sentence holds; 0 when it is about other weekdays than the
        ones asked about ("open on Mondays?" is not answered by the Saturday hours)."""
        asked = weekdays(question.text) or (weekdays(question.topic.text) if question.topic else set())
        named = weekdays(text)
        if asked and named and not asked & named:
            return -1.0
        wanted = len(question.answer_types) + bool(asked)  # the day asked about is wanted too
        if not wanted:
            return 0.0
        hits = sum(answers_type(facts, text, t) for t in question.answer_types) + bool(asked & named)
        return hits / wanted

    # -- the answer -------------------------------------------------------------------------------------------

    def _answer(self, question: Question, ranked: list[Evidence]) -> list[Evidence]:
        """The best sentence, and a second one when it scores close and covers what the first does not (the
        other half of a two-part question, a kind of fact the first lacks)."""
        best = ranked[0]
        answer = [best]
        covered = set(content_terms(best.spoken_text))
        typed = {
            t
            for t in question.answer_types
            if answers_type(extract_facts(best.spoken_text), best.spoken_text, t)
        }
        for other in ranked[1 : 1 + 4]:
            if (
                len(answer) >= self.max_answer_sentences
                or other.score < self.second_sentence_ratio * best.score
            ):
                break
            terms = set(content_terms(other.spoken_text))
            new_terms = [t for t in question.terms if t in terms and t not in covered]
            other_facts = extract_facts(other.spoken_text)
            new_types = {
                t for t in question.answer_types - typed if answers_type(other_facts, other.spoken_text, t)
            }
            if new_terms or new_types:
                answer.append(other)
                covered |= terms
                typed |= new_types
        return answer


def _same_statement(a: Evidence, b: Evidence) -> bool:
    """Is one of the two the other's lead ("The Business plan costs $15." and "It includes unlimited storage."
    spoken with it)? They then score alike, and the pair is one answer, not two rival ones."""
    return a.sentence == b.lead or b.sentence == a.lead


def combine_parts(
    selections: list[EvidenceSelection], min_confidence: float, part_ratio: float = 1.0
) -> EvidenceSelection:
    """One selection for a question asked in parts. Nothing is answered unless one part reaches
    ``min_confidence``; then every part reaching ``part_ratio`` x ``min_confidence`` is answered (a second part
    is short and leans on the first, so it scores lower), in order, and the others are counted unanswered.
    The confidence is the best part's."""
    if len(selections) == 1:
        return selections[0]
    best = max(selections, key=lambda s: s.confidence)
    if not best.answer or best.confidence < min_confidence:
        return best
    answered = [s for s in selections if s.answer and s.confidence >= part_ratio * min_confidence]
    answer: list[Evidence] = []
    for s in answered:
        answer.extend(e for e in s.answer if e.sentence not in {a.sentence for a in answer})
    candidates = sorted((c for s in selections for c in s.candidates), key=lambda e: e.score, reverse=True)
    return EvidenceSelection(
        candidates,
        answer,
        best.confidence,
        min(s.coverage for s in selections),
        [n for s in selections for n in s.unknown_names],
        len(selections) - len(answered),
    )
