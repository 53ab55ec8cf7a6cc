"""How one reply is judged, without a judge model: accepted facts are looked for in the spoken words,
refusals are recognised by what they say, and invented facts are fact-bearing tokens (``agent.facts``) that
neither the evidence, the conversation nor the persona hold."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agent.facts import NUMBER_WORD, Fact, FactIndex, canonical_number, word_number

_NUMBER_WORDS = re.compile(r"\b" + NUMBER_WORD + r"\b")
_CURRENCY = re.compile(r"([$€£])\s?(\d[\d,]*(?:\.\d+)?)")
_CURRENCY_WORD = {"$": "dollars", "€": "euros", "£": "pounds"}
_PHONE_DIGITS = 7

_DOES_NOT_KNOW = re.compile(
    r"\b(?:do(?:n't| not) (?:have|know)|have no (?:information|details)|not sure|no information|"
    r"(?:can't|cannot|couldn't|could not) (?:find|tell|say|answer|help with that)|unable to (?:find|answer)|"
    r"not (?:something|information) I have)\b",
    re.IGNORECASE,
)
_OFFERS_HELP = re.compile(
    r"\b(?:call (?:you )?back|callback|transfer|colleague|someone (?:who|from|will|can)|have someone|"
    r"put you through|connect you)\b",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Lower case, "$30" as "30 dollars", number words as digits, thousands separators and punctuation
    (other than inside e-mails, URLs, times and decimals) dropped."""
    text = text.lower().replace("’", "'")
    text = _CURRENCY.sub(lambda m: f"{m.group(2)} {_CURRENCY_WORD[m.group(1)]}", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = _NUMBER_WORDS.sub(lambda m: canonical_number(word_number(m.group(0)) or 0), text)
    text = re.sub(r"(\d+):00\b", r"\1", text)
    text = re.sub(r"(\d)\s?%", r"\1 percent", text)
    text = re.sub(r"[^\w@./:'%-]+", " ", text)
    text = re.sub(r"(?<=\w)'(?!\w)|(?<!\w)'", " ", text)  # "24 hours' notice": quotes, not letters
    text = re.sub(r"(?<![\w@])[.:/-]+|[.:/-]+(?![\w])", " ", text)
    return " ".join(text.replace("-", " ").split())


def holds_fact(reply: str, forms: Iterable[str]) -> bool:
    """Is one of the accepted ``forms`` of a fact in ``reply``? A phone number matches on its digits."""
    said = f" {normalise(reply)} "
    digits = re.sub(r"\D", "", reply)
    for form in forms:
        form_digits = re.sub(r"\D", "", form)
        if len(form_digits) >= _PHONE_DIGITS and form_digits[-_PHONE_DIGITS:] in digits:
            return True
        if re.search(rf" {re.escape(normalise(form))}s? ", said):  # "Tuesdays" holds "Tuesday"
            return True
    return False


def holds_all(reply: str, expect: Iterable[Iterable[str]]) -> bool:
    return all(holds_fact(reply, forms) for forms in expect)


def is_refusal(reply: str) -> bool:
    """Says it does not know and offers a call-back or a transfer."""
    return bool(_DOES_NOT_KNOW.search(reply)) and bool(_OFFERS_HELP.search(reply))


def invented_facts(reply: str, sources: Iterable[str]) -> list[Fact]:
    """Facts of ``reply`` that none of ``sources`` (evidence, conversation, persona) holds."""
    return FactIndex(sources).unsupported(reply)
