"""The privacy policy: what metadata, names and messages AgentTracer may store.

One policy, pure functions, standard library only. The SDK applies it in its background worker before
anything leaves the agent's process; the Ingest API applies it again to every event before storage.

NOTE: this is the minimal policy that fixes the interface; the full detectors (PII, secrets, prose)
arrive with the privacy work and keep these signatures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agenttracer.model import MAX_MESSAGE_LEN, MAX_META_KEYS, MAX_META_STRING_LEN, MAX_NAME_LEN

Scalar = bool | int | float | str

REDACTED_NAME = "[redacted]"

_KEY_RE = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
_FORBIDDEN_TOKENS = frozenset(
    "prompt completion response output input message messages content text query question answer "
    "document documents chunk chunks context thought reasoning password secret token api_key "
    "authorization cookie email phone address ssn".split()
)


@dataclass(frozen=True)
class Removal:
    """One metadata entry (or field) the policy refused, by key and reason code — never by value."""

    key: str
    reason: str


def scrub_metadata(metadata: Mapping[str, object] | None) -> tuple[dict[str, Scalar], list[Removal]]:
    """Split metadata into what may be stored and what was removed (with a reason code per key)."""
    kept: dict[str, Scalar] = {}
    removed: list[Removal] = []
    if not metadata:
        return kept, removed
    for raw_key, value in metadata.items():
        key = str(raw_key)
        if not _KEY_RE.match(key):
            removed.append(Removal(key[:64], "invalid_key"))
            continue
        if any(tok in _FORBIDDEN_TOKENS for tok in re.split(r"[_.]", key)):
            removed.append(Removal(key, "forbidden_key"))
            continue
        if len(kept) >= MAX_META_KEYS:
            removed.append(Removal(key, "too_many_keys"))
            continue
        if isinstance(value, bool) or (isinstance(value, int) and abs(value) < 2**53):
            kept[key] = value
        elif isinstance(value, float):
            if math.isfinite(value):
                kept[key] = value
            else:
                removed.append(Removal(key, "non_finite"))
        elif isinstance(value, str):
            if len(value) > MAX_META_STRING_LEN:
                removed.append(Removal(key, "too_long"))
            else:
                kept[key] = value
        else:
            removed.append(Removal(key, "unsupported_type"))
    return kept, removed


def scrub_name(name: str) -> tuple[str, str | None]:
    """Return a storable step/tool name and the reason code if it had to be replaced."""
    if len(name) > MAX_NAME_LEN:
        return REDACTED_NAME, "too_long"
    return name, None


def scrub_message(message: str | None) -> tuple[str | None, str | None]:
    """Return a storable failure message (or None) and the reason code if anything was removed."""
    if message is None:
        return None, None
    if len(message) > MAX_MESSAGE_LEN:
        return message[:MAX_MESSAGE_LEN], "too_long"
    return message, None
