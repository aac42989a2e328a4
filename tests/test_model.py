"""The execution model's pure helpers: the input rules (the exception classifier is tests/test_failure_codes.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agenttracer.model import (
    MAX_FUTURE,
    has_bad_chars,
    to_utc_in_range,
)

# --- Input rules


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(1970, 1, 1, tzinfo=timezone.utc)),
        (datetime(1970, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), datetime(1970, 1, 1, tzinfo=timezone.utc)),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), None),
        (NOW + MAX_FUTURE, NOW + MAX_FUTURE),
        (NOW + MAX_FUTURE + timedelta(microseconds=1), None),
        (datetime(2026, 11, 25, 9), datetime(2026, 11, 25, 9, tzinfo=timezone.utc)),  # naive: read as UTC
        # Not representable in UTC at all: out of range, not an error.
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), None),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))), None),
        (datetime.min.replace(tzinfo=timezone.utc), None),
        (datetime.max.replace(tzinfo=timezone.utc), None),
    ],
)
def test_the_timestamp_rule_is_total(value: datetime, expected: datetime | None) -> None:
    assert to_utc_in_range(value, NOW) == expected


@pytest.mark.parametrize(
    ("text", "bad"),
    [("plain", False), ("tab\t", True), ("a\x00b", True), ("del\x7f", True), ("é日本", False),
     ("lone\ud800", True), ("", False), ("line\n", True), ("\u2028", False)],
)
def test_has_bad_chars(text: str, bad: bool) -> None:
    assert has_bad_chars(text) is bad

