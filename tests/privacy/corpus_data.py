"""Loading the committed privacy corpus (see ``corpus/generate.py``), and the "did it leak?" test."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from agenttracer.privacy import normalize_text

CORPUS = Path(__file__).resolve().parent / "corpus"


@cache
def load(name: str) -> tuple[dict[str, str], ...]:
    with (CORPUS / name).open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def hostile() -> tuple[dict[str, str], ...]:
    return load("hostile.jsonl")


def benign() -> tuple[dict[str, str], ...]:
    return load("benign.jsonl")


def benign_messages() -> tuple[dict[str, str], ...]:
    return load("benign_messages.jsonl")


_SEPARATORS = re.compile(r"[\s\-.()\[\]_/]+")


def compact(text: str) -> str:
    """Lower-case, normalised, without separators: '4111 1111-1111' and '41111111111' compare equal."""
    return _SEPARATORS.sub("", normalize_text(text)).lower()


def forms(entry: dict[str, str]) -> set[str]:
    """Every spelling of a hostile entry that must not appear in stored or logged output."""
    value, needle = entry["value"], entry["needle"]
    return {value, normalize_text(value), needle, normalize_text(needle)} - {""}


def leaks(entry: dict[str, str], output: str) -> bool:
    """True if ``output`` contains the hostile entry in any spelling, including separator-free."""
    if any(form in output for form in forms(entry)):
        return True
    core = compact(entry["needle"])
    return len(core) >= 6 and core in compact(output)
