"""A regex scrubber for identifiers in free text (EHR comments, FHIR narratives and notes).

What it replaces, in this order, each by a bracketed tag so a reader sees that something was there:

- ``[EMAIL]``, ``[URL]`` first (whole), then ``[NAME]``: every *known* identifier given by the caller
  (a patient's names from the same record, an MRN, a city) wherever it occurs (case-insensitive, on word
  boundaries); then capitalised words after a title (``Dr.``, ``Mr``, ``Mrs``, ``Ms``, ``Miss``, ``Prof``,
  ``Nurse``) or a label (``Name:``, ``Patient:``, ``Signed by``, ``Attending:``).
- ``[IP]``: IPv4 addresses.
- ``[DATE]``: ISO dates and date-times, ``d/m/y`` and ``m/d/y`` with ``/`` or ``-`` (``d.m.yyyy``), ``12 Jan 2020``,
  ``January 12, 2020``, ``Jan 2020``.
- ``[PHONE]``: North-American and international numbers (``(617) 555-0123``, ``617-555-0123``,
  ``+44 20 7946 0958``) and numbers after ``tel``/``phone``/``fax``/``pager``.
- ``[ID]``: US SSNs (``123-45-6789``), identifiers holding a digit after a label (``MRN``, ``ID``, ``record``,
  ``acct``, ``SSN``, ``#``), and any run of 6 or more digits (lab values rarely have 6 digits in a row).
- ``[ADDRESS]``: a house number followed by a street word (``12 Main Street``, ``4 Elm Ave``);
  ``[ZIP]``: 5-digit ZIP codes after a two-letter state (``MA 02115``).
- ``[AGE>89]``: ages over 89 (``92 year old``, ``age 95``), which HIPAA Safe Harbor does not allow.

Limits (say them to whoever relies on it): names are found only when the caller knows them or a title or
label introduces them, so a bare "seen with John today" keeps "John"; misspelt or abbreviated names,
nicknames, initials, relatives' names, rare date formats (``the 3rd of May``), hospital and street names
without a number, and identifiers written with spaces (``123 456 789``) are missed. It is a safety net
for structured exports, not a replacement for a validated clinical de-identification system (e.g.
Philter or a trained NER model) before releasing clinical notes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_CAP = r"[A-Z][a-zA-Z'\-]+"

#: (tag, pattern) applied in order after the known identifiers.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[EMAIL]", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("[URL]", re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)),
    (
        "[NAME]",
        re.compile(
            rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Nurse|Sister)\b\.?\s+{_CAP}(?:\s+{_CAP})?"
            rf"|\b(?:[Nn]ame|[Pp]atient|[Ss]igned by|[Aa]ttending|[Rr]eferred by|[Cc]ontact)\s*:\s*{_CAP}(?:\s+{_CAP})?"
        ),
    ),
    ("[IP]", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    (
        "[DATE]",
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
            r"|\b\d{1,2}([/-])\d{1,2}\1(?:\d{4}|\d{2})\b(?![.,]?\d)"
            r"|\b\d{1,2}\.\d{1,2}\.\d{4}\b(?![.,]?\d)"
            r"|\b\d{4}/\d{1,2}/\d{1,2}\b"
            rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS},?\s+\d{{2,4}}\b"
            rf"|\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b"
            rf"|\b{_MONTHS}\s+\d{{4}}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "[PHONE]",
        re.compile(
            r"(?:\b(?:tel|phone|fax|pager|cell|mobile)\b\.?:?\s*)[+\d][\d\s().-]{5,}\d"
            r"|(?<![\w-])\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){2,3}\b"
            r"|(?<![\w-])(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "[ID]",
        re.compile(
            r"\b\d{3}-\d{2}-\d{4}\b"
            r"|\b(?:MRN|ID|SSN|DL|licen[cs]e|passport|acct|account|record|medical record|unit no|#)"
            r"(?:\s*(?:number|no\.?|#))?(?:\s*[:#]\s*|\s+)"
            r"(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{3,}\b"
            r"|\b[A-Za-z]{0,3}\d{6,}[A-Za-z]{0,3}\b",
            re.IGNORECASE,
        ),
    ),
    (
        "[ADDRESS]",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}"
            r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace)\b\.?"
        ),
    ),
    ("[ZIP]", re.compile(r"(?<=\b[A-Z]{2}\s)\d{5}(?:-\d{4})?\b")),
    (
        "[AGE>89]",
        re.compile(
            r"\b(?:9\d|1[0-4]\d)\s*(?:-|\s)?\s*(?:years?|yrs?|y/?o)\b(?:[\s-]*old)?"
            r"|\bage[d]?\s*:?\s*(?:9\d|1[0-4]\d)\b",
            re.IGNORECASE,
        ),
    ),
)


@dataclass
class ScrubResult:
    """The scrubbed text and how many replacements of each tag were made."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.counts)


class TextScrubber:
    """Replace identifiers in free text (see the module docstring for what is caught and what is not).

    Args:
        known: identifiers to remove wherever they occur (names, record numbers); values of fewer than
            2 characters are ignored (an initial would erase every such letter).

    Example:
        >>> TextScrubber(known=["Reinger"]).scrub("Reinger called 617-555-0123 on 2019-05-02").text
        '[NAME] called [PHONE] on [DATE]'
    """

    def __init__(self, known: Iterable[str] = ()):
        words = sorted({k.strip() for k in known if k and len(k.strip()) >= 2}, key=len, reverse=True)
        self._known = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
            if words
            else None
        )

    def scrub(self, text: str) -> ScrubResult:
        """Scrub one string."""
        counts: dict[str, int] = {}
        for tag, pattern in _PATTERNS[:2]:  # e-mail addresses and URLs whole, before names split them
            text, n = pattern.subn(tag, text)
            if n:
                counts[tag] = n
        if self._known is not None:
            text, n = self._known.subn("[NAME]", text)
            if n:
                counts["[NAME]"] = n
        for tag, pattern in _PATTERNS[2:]:
            text, n = pattern.subn(tag, text)
            if n:
                counts[tag] = counts.get(tag, 0) + n
        return ScrubResult(text, counts)

    def __call__(self, text: str) -> str:
        return self.scrub(text).text


def scrub_text(text: str, known: Iterable[str] = ()) -> str:
    """Scrub ``text`` with a one-off :class:`TextScrubber` (see its docstring)."""
    return TextScrubber(known).scrub(text).text
