"""Electronic health records: readers to one event table, then timelines, features, models and tasks.

Sub-packages import polars on first use; importing :mod:`medlearn.ehr` itself loads nothing heavy.
"""

from __future__ import annotations
