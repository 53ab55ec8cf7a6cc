"""The extractive answer: the evidence sentences themselves, turned to address the caller ("New patients should
bring their insurance card" -> "You should bring your insurance card"). Every fact in it is the document's."""

from __future__ import annotations

import re

from agent.evidence import Evidence

# A generic role at the start of a sentence stands for the caller; a qualified one ("Plus members") does not.
_ROLE = (
    r"(?:new |existing |all |our )?(?:customers|patients|clients|callers|users|subscribers|visitors|guests"
    r"|buyers|account holders)"
)
_ROLE_SINGULAR = r"(?:a|the|each|every|any) (?:new |existing )?(?:customer|patient|client|caller|user|subscriber|visitor|guest|buyer|account holder)"
_PLURAL_SUBJECT = re.compile(rf"^{_ROLE}\b", re.IGNORECASE)
_SINGULAR_SUBJECT = re.compile(rf"^{_ROLE_SINGULAR}\b", re.IGNORECASE)
_THIRD_PERSON_VERB = {"has": "have", "is": "are", "was": "were", "does": "do", "needs": "need", "gets": "get",
                      "pays": "pay", "receives": "receive", "wants": "want", "can": "can", "must": "must"}  # fmt: skip
# Verbs (and modals) a role subject is followed by; anything else means the role is not the subject.
_VERBS_TEXT = """
    can cannot can't may must should will would need needs get gets have has are is were was do does pay
    pays receive receives bring brings keep keeps call calls book books arrive arrives
"""
_VERBS = frozenset(_VERBS_TEXT.split())
_POSSESSIVE = re.compile(r"\b(their|they|them|themselves|his or her|his|her)\b", re.IGNORECASE)
_POSSESSIVE_MAP = {"their": "your", "they": "you", "them": "you", "themselves": "yourself",
                   "his or her": "your", "his": "your", "her": "your"}  # fmt: skip


def second_person(sentence: str) -> str:
    """``sentence`` addressed to the caller when its subject is a generic customer role; else unchanged."""
    plural = _PLURAL_SUBJECT.match(sentence)
    singular = None if plural else _SINGULAR_SUBJECT.match(sentence)
    match = plural or singular
    if match is None:
        return sentence
    rest = sentence[match.end() :]
    verb = re.match(r"\s+(\w+)", rest)
    if verb is None or verb.group(1).lower() not in _VERBS:
        return sentence  # "A new patient exam costs ...": the role word is not the subject here
    if singular is not None:
        # "A patient needs to ..." -> "You need to ...": the verb after the subject loses its -s.
        verb = re.match(r"\s+(\w+)", rest)
        if verb is not None:
            word = verb.group(1)
            plain = _THIRD_PERSON_VERB.get(
                word.lower(), word[:-1] if word.endswith("s") and len(word) > 3 else word
            )
            rest = rest[: verb.start(1)] + plain + rest[verb.end(1) :]
    if re.match(r"\s+who\b", rest):
        return sentence  # "Customers who ..." reads badly as "You who ..."
    rest = _POSSESSIVE.sub(lambda m: _POSSESSIVE_MAP[m.group(1).lower()], rest)
    return "You" + rest


def extractive_sentences(answer: list[Evidence]) -> list[str]:
    """What the caller hears: each answer sentence (with the sentence its pronoun refers to), addressed to
    the caller, ending with a full stop."""
    spoken: list[str] = []
    for evidence in answer:
        for sentence in ([evidence.lead] if evidence.lead else []) + [evidence.sentence]:
            text = second_person(sentence.strip())
            if text[-1:] not in ".!?":
                text += "."
            if text not in spoken:
                spoken.append(text)
    return spoken
