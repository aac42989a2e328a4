"""Small helpers to read what the SDK sent."""

from __future__ import annotations

from typing import Any


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def steps_by_seq(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(of_type(events, "step"), key=lambda e: e["seq"])


def one(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_type(events, kind)
    assert len(found) == 1, f"expected exactly one {kind} event, got {len(found)}"
    return found[0]
