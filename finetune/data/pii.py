"""Personal data in text: e-mail addresses, phone numbers and payment card numbers.

Cards are 13-19 digits (spaces or dashes allowed between digits) that pass the Luhn check, so
order numbers and prices are not reported. Phones are international numbers (``+`` and 8-15
digits) or grouped national numbers (``(555) 123-4567``, ``555-123-4567``, ``020 7946 0958``);
bare digit runs are not, because ids, prices and dates look the same. Matches are found in
that order and never overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("email", "phone", "card")
PLACEHOLDER = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]"}

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # international
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|\d{3} \d{3} \d{4}"  # 555 123 4567
    r"|0\d{2,4}[ -]\d{3,4}[ -]\d{3,4}"  # 020 7946 0958
    r")(?![\w])"
)


# Cheap pre-checks: most text has no "@" and no run of 7+ digits and separators, and then the
# three patterns above need not run at all.
_MAYBE_NUMBER = re.compile(r"\d[\d .()-]{5,}\d")


@dataclass(frozen=True)
class Match:
    """One piece of personal data found in a text."""

    kind: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (only digits) passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[Match]:
    """Every e-mail, phone and card number in ``text``, by position."""
    found: list[Match] = []
    taken: list[tuple[int, int]] = []
    has_at, has_number = "@" in text, _MAYBE_NUMBER.search(text) is not None
    if not has_at and not has_number:
        return found

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for m in _CARD.finditer(text) if has_number else ():
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            found.append(Match("card", m.start(), m.end(), m.group(0)))
            taken.append((m.start(), m.end()))
    for m in _EMAIL.finditer(text) if has_at else ():
        if free(m.start(), m.end()):
            found.append(Match("email", m.start(), m.end(), m.group(0)))
            taken.append((m.start(), m.end()))
    for m in _PHONE.finditer(text) if has_number else ():
        digits = sum(ch.isdigit() for ch in m.group(0))
        if 7 <= digits <= 15 and free(m.start(), m.end()):
            found.append(Match("phone", m.start(), m.end(), m.group(0)))
            taken.append((m.start(), m.end()))
    return sorted(found, key=lambda x: x.start)


def redact(text: str) -> str:
    """``text`` with every match replaced by ``[EMAIL]``, ``[PHONE]`` or ``[CARD]``."""
    out = []
    last = 0
    for m in find_pii(text):
        out.append(text[last : m.start])
        out.append(PLACEHOLDER[m.kind])
        last = m.end
    out.append(text[last:])
    return "".join(out)


def redact_value(value: object) -> object:
    """Redact every string inside a JSON-like value (dicts and lists walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value
