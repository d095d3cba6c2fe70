"""The free-text scrubber: what it catches, and what it must leave alone (clinical values)."""

from __future__ import annotations

import pytest

from medlearn.privacy.text_scrub import TextScrubber, scrub_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Seen by Dr. John Smith today", "Seen by [NAME] today"),
        ("Name: Jane Doe, stable", "[NAME], stable"),
        ("call 617-555-0123 or (617) 555-0123", "call [PHONE] or [PHONE]"),
        ("abroad +44 20 7946 0958", "abroad [PHONE]"),
        ("admitted 2019-05-02 14:30, again on 03/14/2021", "admitted [DATE], again on [DATE]"),
        ("on 12 January 2020 and Jan 3, 2021", "on [DATE] and [DATE]"),
        ("MRN: 12345678", "[ID]"),
        ("SSN 999-43-7348", "[ID]"),
        ("lives at 12 Main Street, Boston MA 02115", "lives at [ADDRESS], Boston MA [ZIP]"),
        ("mail jane.doe@example.org", "mail [EMAIL]"),
        ("a 92 year old man", "a [AGE>89] man"),
    ],
)
def test_identifiers_are_replaced(text: str, expected: str):
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hb 12.3 g/dL, WBC 7.5, Na 140 mmol/L, BP 120/80",
        "DEXTROSE-NACL 20-5-0.45 MEQ/L IV SOLN",
        "SENNOSIDES-DOCUSATE SODIUM 8.6-50 MG PO TABS",
        "Normal Diurnal Pattern: 7-10AM 6.0-18.4 ug/dL",
        "Respiratory Virus Identification",
        "a 45 year old woman",
    ],
)
def test_clinical_values_are_left_alone(text: str):
    assert scrub_text(text) == text


def test_known_identifiers_go_wherever_they_occur():
    scrubber = TextScrubber(known=["Reinger", "Bill", "X"])  # one-letter values are ignored
    result = scrubber.scrub("bill reinger (Reinger) said X")
    assert result.text == "[NAME] [NAME] ([NAME]) said X"
    assert result.counts == {"[NAME]": 3}


def test_names_without_a_title_are_a_known_limit():
    assert scrub_text("seen with John today") == "seen with John today"
