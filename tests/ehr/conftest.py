"""Fixtures shared by the reader tests (test_io_*.py).

A reader test module defines its own module-scoped ``root`` (the dataset, via ``require_data``) and
``source`` (that folder read by the reader under test); ``events`` and ``admissions`` below are that
module's ``source`` tables, collected once per module.
"""

from __future__ import annotations

import polars as pl
import pytest


@pytest.fixture(scope="module")
def events(source) -> pl.DataFrame:
    """The module's ``source.events``, collected."""
    return source.events.collect()


@pytest.fixture(scope="module")
def admissions(source) -> pl.DataFrame:
    """The module's ``source.admissions``, collected."""
    return source.admissions.collect()
