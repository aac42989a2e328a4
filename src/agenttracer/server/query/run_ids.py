"""Naming a run in a Query API path: its whole UUID, or the start of it (``agenttracer show 3f2b9c1e``).

A prefix is read into the form stored run ids take (lower case, dashes where a canonical UUID has
them) and resolved against the runs the reader may see: exactly one run's id begins with it, or the
answer says how many do (409) or that none does (404).
"""

from __future__ import annotations

from fastapi.responses import Response

from agenttracer.server.errors import error_response

MAX_PREFIX_MATCHES = 1000  # how many runs an ambiguous prefix's answer counts at most
RUN_ID_PREFIX_RULE = (
    "must be a UUID, or a prefix of one of at least 4 hex digits (dashes only where the UUID has them, "
    "or none)"
)
MIN_PREFIX_DIGITS = 4
_UUID_GROUPS = (8, 4, 4, 4, 12)


def run_id_prefix(value: str) -> str | None:
    """A run id prefix as stored run ids begin (lower case, dashes where a canonical UUID has them),
    from a prefix typed with or without those dashes; None if it is not one. A whole UUID is not a
    prefix (the caller looks it up as it is)."""
    text = value.strip().lower()
    digits = text.replace("-", "")
    if not MIN_PREFIX_DIGITS <= len(digits) < 32 or not all(c in "0123456789abcdef" for c in digits):
        return None
    groups, start = [], 0
    for size in _UUID_GROUPS:
        if start >= len(digits):
            break
        groups.append(digits[start:start + size])
        start += size
    canonical = "-".join(groups)
    if "-" in text and not (canonical.startswith(text) or canonical + "-" == text):
        return None  # dashes in places a UUID has none
    return canonical


def ambiguous(prefix: str, found: int) -> Response:
    """The 409 for a prefix that ``found`` runs' ids begin with (``found`` counted up to one past the cap)."""
    matches = min(found, MAX_PREFIX_MATCHES)
    more = "more than " if found > MAX_PREFIX_MATCHES else ""
    return error_response(409, "ambiguous_prefix", f"{more}{matches} runs have ids beginning with {prefix}",
                          field="run_id", rule="a prefix must begin exactly one run's id: give more of the id",
                          matches=matches)
