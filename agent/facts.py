"""Fact-bearing tokens of a text (numbers, money, quantities, times, dates, phone numbers, e-mails, URLs, names)
and a ``FactIndex`` that says which of them the evidence, the conversation and the persona support.

This is the one definition of "a fact" the agent uses twice: to check each generated sentence before it is
spoken, and to score replies in ``agent.evaluation`` (``invented_fact_rate``). Written forms are normalised,
so "$69", "69 dollars" and "sixty-nine dollars" are one fact, while "69 cents" is another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

FactKind = Literal["number", "money", "quantity", "time", "date", "phone", "email", "url", "name"]

_ONES = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10,
}  # fmt: skip
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
)  # fmt: skip
_CURRENCY_SIGN = {"$": "usd", "€": "eur", "£": "gbp"}
_CURRENCY_WORD = {
    "dollar": "usd", "dollars": "usd", "usd": "usd", "euro": "eur", "euros": "eur", "eur": "eur",
    "pound": "gbp", "pounds": "gbp", "gbp": "gbp", "cent": "usd/100", "cents": "usd/100",
}  # fmt: skip
# Units whose number is the fact ("90 days", "2 GB", "50 percent"); a unit changes the fact.
_UNITS = {
    "second": "second", "seconds": "second", "minute": "minute", "minutes": "minute", "min": "minute",
    "hour": "hour", "hours": "hour", "hr": "hour", "hrs": "hour", "day": "day", "days": "day",
    "week": "week", "weeks": "week", "month": "month", "months": "month", "year": "year", "years": "year",
    "percent": "percent", "per cent": "percent", "%": "percent", "gb": "gb", "mb": "mb", "tb": "tb",
    "kb": "kb", "mile": "mile", "miles": "mile", "km": "km", "kilometers": "km", "kilometres": "km",
}  # fmt: skip

NUMBER_WORD = (  # "forty-five", "twelve"
    r"(?:(?:"
    + "|".join(_TENS)
    + r")(?:[- ](?:"
    + "|".join(k for k in _ONES if _ONES[k] and _ONES[k] < 10)
    + r"))?"
    r"|" + "|".join(sorted(_ONES, key=len, reverse=True)) + r")"
)
_NUM = r"(?:\d+(?:,\d{3})*(?:\.\d+)?|" + NUMBER_WORD + r")"

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(
    r"\b(?:https?://)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|co|us|uk|de|fr|info|biz|app|dev)"
    r"(?:/[\w./?=&%-]*[\w/])?",
    re.IGNORECASE,
)
# (503) 555-0147, 503-555-0147, +1 503 555 0147, 555-0147, and the spoken form "5 0 3, 5 5 5, 0 1 4 7".
_PHONE = re.compile(
    r"(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])?\d{3}[\s.-]\d{4}\b|\b(?:\d,?\s){6,}\d\b"
)
_TIME = re.compile(
    r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])(?:\.m\.|\.?\s?m\b)|\b(\d{1,2}):(\d{2})\b|\b(noon|midday|midnight)\b",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"([$€£])\s?(" + _NUM + r")|\b(" + _NUM + r")[\s-]?(" + "|".join(_CURRENCY_WORD) + r")\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\b(" + _NUM + r")(?:\s?|-)(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")(?![\w])",
    re.IGNORECASE,
)
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b|\b(" + "|".join(_ORDINALS) + r")\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(" + _NUM + r")(?![\w]|-[a-z])", re.IGNORECASE)
# "one" as a pronoun or in set phrases is not a number.
_NOT_NUMBER_ONE = re.compile(
    r"\b(?:no|any|every|each|the|that|this|which|a|last|next|little|only)\s+one\b"
    r"|\bone\s+(?:of|moment|another|more|sec|second|minute|day)\b",
    re.IGNORECASE,
)
_DATE = re.compile(r"\b(" + "|".join(WEEKDAYS) + r")s?\b|\b(" + "|".join(_MONTHS) + r")\b", re.IGNORECASE)
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z'’-]*[A-Za-z]\b|\b[A-Z]{2,}\b|\b[a-z]+[A-Z]\w*")
_AFTER_TITLE = re.compile(r"\b(?:dr|mr|mrs|ms|st|prof)\.\s*$", re.IGNORECASE)  # "Dr. Smith": a name
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n(\"“]\s*|^\s*[-*•]\s*)$")

# Capitalised at the start of a sentence, these words are ordinary words, not names.
_COMMON_WORDS_TEXT = """
    a about absolutely after afterwards again all also although always an and another any anyone anything
    apart are as at be because before besides both but by can certainly could currently dear definitely do
    does during each either else even every everyone everything excellent fine first following for from
    generally good great happy hello hey hi how however i if in indeed instead is it its just kindly let
    like many may maybe meanwhile most mostly much my no nope not note now of off oh ok okay on once one
    only or other otherwise our ours please plus perfect right see she should since so some someone
    something sometimes sorry still such sure thank thanks that the their then there therefore these they
    this those though thus to today tomorrow too typically unfortunately unless until up usually very we
    well what whatever when whenever where whether which while who whom whose why will with within would yes
    yeah yet you your yours yourself alright welcome goodbye bye morning afternoon evening night here got
    glad just let me mine he his her him hers them us don't doesn't can't won't isn't aren't i'm i'll i've
    you're you'll you've we're we'll we've it's that's there's here's what's let's didn't wasn't weren't
    haven't hasn't shouldn't wouldn't couldn't ah uh um hmm wow oops dr mr mrs ms st am pm open opened
    closed close call calling visit book booking bring please contact email phone check ask try feel make
    take keep come go get give send tell find use pay need want know think hope look new old free extra full
    regular normal standard best better next last few several more less same yesterday tonight now soon
    later early late daily weekly monthly annual annually yearly our customers customer patients patient
    members member users user clients client staff team unused opened every all any some most prices price
    fees fee costs cost payment payments refunds anyway besides honestly actually basically simply sadly
    luckily happily naturally obviously of course alternatively additionally also furthermore moreover
    however instead otherwise overall
"""
COMMON_WORDS = frozenset(_COMMON_WORDS_TEXT.split())


_NEVER_NAMES = frozenset(
    ["i", "i'm", "i'll", "i've", "i'd", "ok", "okay", "dr", "mr", "mrs", "ms", "st", "am", "pm"]
)


@dataclass(frozen=True)
class Fact:
    """One fact-bearing token: ``kind`` and canonical ``value`` (what is compared), ``text`` as written."""

    kind: FactKind
    value: str
    text: str

    @property
    def number(self) -> str | None:
        """The bare number inside a number, money amount, quantity or time ("69 usd" -> "69")."""
        if self.kind in ("number", "money", "quantity"):
            return self.value.split(" ", 1)[0]
        if self.kind == "time":
            return self.value.rstrip("apm").split(":")[0]
        return None


def word_number(text: str) -> float | None:
    """``"forty-five"`` -> 45, ``"1,200"`` -> 1200, ``"12.50"`` -> 12.5; None when ``text`` is no number."""
    t = text.lower().replace(",", "").strip()
    try:
        return float(t)
    except ValueError:
        pass
    parts = re.split(r"[- ]", t)
    total = 0
    for part in parts:
        if part in _TENS:
            total += _TENS[part]
        elif part in _ONES:
            total += _ONES[part]
        else:
            return None
    return float(total)


def canonical_number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def extract_facts(text: str) -> list[Fact]:
    """Every fact-bearing token of ``text``, in order of kind (each character belongs to one fact at most)."""
    work = [text]  # a matched span is blanked out so nothing is counted twice
    facts: list[Fact] = []

    def take(pattern: re.Pattern[str]) -> list[re.Match[str]]:
        found = list(pattern.finditer(work[0]))
        for m in found:
            work[0] = work[0][: m.start()] + " " * (m.end() - m.start()) + work[0][m.end() :]
        return found

    for m in take(_EMAIL):
        facts.append(Fact("email", m.group(0).lower(), m.group(0)))
    for m in take(_URL):
        value = re.sub(r"^(?:https?://)?(?:www\.)?", "", m.group(0).lower()).rstrip("/")
        facts.append(Fact("url", value, m.group(0)))
    for m in take(_PHONE):
        digits = re.sub(r"\D", "", m.group(0))
        facts.append(
            Fact("phone", digits[-7:], m.group(0))
        )  # the last 7 digits: area codes are often left out
    for m in take(_TIME):
        facts.append(Fact("time", _time_value(m), m.group(0).strip()))
    for m in take(_MONEY):
        facts.append(_money(m))
    for m in take(_QUANTITY):
        number = word_number(m.group(1))
        if number is not None:
            unit = _UNITS[m.group(2).lower()]
            facts.append(Fact("quantity", f"{canonical_number(number)} {unit}", m.group(0)))
    take(_NOT_NUMBER_ONE)  # blanked: "one of", "no one"... are not numbers
    for m in take(_ORDINAL):
        n = int(m.group(1)) if m.group(1) else _ORDINALS[m.group(2).lower()]
        facts.append(Fact("number", str(n), m.group(0)))
    for m in take(_NUMBER):
        number = word_number(m.group(1))
        if number is not None:
            facts.append(Fact("number", canonical_number(number), m.group(0)))
    for m in _DATE.finditer(text):
        if m.group(2) and m.group(2) == "may":  # the verb, not the month
            continue
        facts.append(Fact("date", (m.group(1) or m.group(2)).lower(), m.group(0)))
    facts.extend(_names(work[0]))
    return facts


def _time_value(m: re.Match[str]) -> str:
    if m.group(6):
        return "12pm" if m.group(6).lower() in ("noon", "midday") else "12am"
    if m.group(3):
        hour, minute, meridiem = int(m.group(1)), m.group(2), m.group(3).lower() + "m"
    else:
        hour, minute, meridiem = int(m.group(4)), m.group(5), ""
    minutes = "" if minute in (None, "00") else f":{minute}"
    return f"{hour}{minutes}{meridiem}"


def _money(m: re.Match[str]) -> Fact:
    if m.group(1):
        currency, amount = _CURRENCY_SIGN[m.group(1)], m.group(2)
    else:
        currency, amount = _CURRENCY_WORD[m.group(4).lower()], m.group(3)
    number = word_number(amount) or 0.0
    if currency == "usd/100":
        currency, number = "usd", number / 100
    return Fact("money", f"{canonical_number(number)} {currency}", m.group(0))


def _names(text: str) -> list[Fact]:
    names = []
    for m in _CAPITALISED.finditer(text):
        word = m.group(0).lower().replace("’", "'")
        if word in _NEVER_NAMES or word.rstrip("s") in WEEKDAYS or word in _MONTHS:
            continue
        before = text[: m.start()]
        starts = _SENTENCE_START.search(before) and not _AFTER_TITLE.search(before)
        if starts and not _name_at_start(m.group(0), text[m.end() :]):
            continue
        names.append(Fact("name", word, m.group(0)))
    return names


def _name_at_start(word: str, after: str) -> bool:
    """Is a capitalised word that starts a sentence a name? Without a dictionary, only when it plainly is:
    the first of several capitalised words ("Hugging Face"), or capitals inside it ("SmolLM", "iPad").
    A lone "Plans ..." or "Unfortunately, ..." is an ordinary word."""
    lowered = word.lower()
    if lowered in COMMON_WORDS or lowered.endswith("ly"):
        return False
    return bool(re.match(r"\s+[A-Z]", after)) or any(c.isupper() for c in word[1:])


_WORD = re.compile(r"[a-z0-9][a-z0-9'’-]*")


class FactIndex:
    """The facts of some source texts (evidence, conversation, persona); answers whether a fact is among them.

    A typed fact (money, quantity, time) is supported by the same typed fact, or by its bare number when the
    sources only give the number untyped ("costs 69" supports "$69"; "$69" does not support "69 cents").
    A name is supported when the word occurs anywhere in the sources (any case).
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._exact: set[tuple[str, str]] = set()
        self._bare_numbers: set[str] = set()
        self._numbers: set[str] = set()
        self._words: set[str] = set()
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        for fact in extract_facts(text):
            self._exact.add((fact.kind, fact.value))
            number = fact.number
            if number is not None:
                self._numbers.add(number)
                if fact.kind == "number":
                    self._bare_numbers.add(number)
        self._words.update(w.replace("’", "'") for w in _WORD.findall(text.lower()))

    def supports(self, fact: Fact) -> bool:
        if (fact.kind, fact.value) in self._exact:
            return True
        if fact.kind == "number":
            return fact.value in self._numbers
        if fact.kind in ("money", "quantity", "time"):
            number = fact.number
            if fact.kind == "time" and not fact.value[-2:] in ("am", "pm"):
                return number in self._numbers  # "9:30" without am/pm: any 9:30 in the sources
            return number is not None and number in self._bare_numbers
        if fact.kind == "name":
            return all(part in self._words for part in re.split(r"[-’']", fact.value) if part)
        if fact.kind == "date":
            return fact.value in self._words or fact.value + "s" in self._words
        return False

    def unsupported(self, text: str) -> list[Fact]:
        """The facts of ``text`` that the sources do not hold (empty: every fact is grounded)."""
        return [f for f in extract_facts(text) if not self.supports(f)]
