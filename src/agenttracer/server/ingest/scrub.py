"""Applying the privacy policy to one event's fields on the server, with the server's extra checks.

Shared by both ways an event is converted (``events``' model path and ``fastpath``), so
the two cannot drift apart. Every helper appends what it dropped to ``removed`` as ``{"key",
"reason"}`` — by key and reason code, never the value. The policy's functions are total (they fail
closed themselves, with the reason ``policy_error``), so nothing here guards against them raising.
"""

from __future__ import annotations

from typing import Any

from agenttracer import privacy
from agenttracer.model import MAX_MESSAGE_LEN, MAX_META_STRING_LEN, has_bad_chars

_MAX_ECHOED_KEY = 64


def safe_key(key: object) -> str:
    """A key as it may be echoed back: bounded, and without characters JSON or logs choke on."""
    text = key if isinstance(key, str) else str(key)
    text = text[:_MAX_ECHOED_KEY]
    return "".join("?" if has_bad_chars(ch) else ch for ch in text) if has_bad_chars(text) else text


def removal(key: str, reason: str) -> dict[str, str]:
    return {"key": safe_key(key), "reason": reason}


def scrub_metadata(value: Any, removed: list[dict[str, str]], prefix: str = "metadata") -> dict[str, Any]:
    """The storable part of an event's metadata; every dropped key is appended to ``removed``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        removed.append(removal(prefix, "not_an_object"))
        return {}
    kept, removals = privacy.scrub_metadata(value)
    if removals:
        removed.extend(removal(f"{prefix}.{r.key}", r.reason) for r in removals)
    clean: dict[str, Any] = {}
    for key, item in kept.items():
        # Belt and braces below the policy: nothing a database refuses (NUL, lone surrogates) and
        # nothing longer than the schema promises. Plain printable ASCII (the usual key and value)
        # needs no closer look.
        plain_item = not isinstance(item, str) or (
            item.isascii() and item.isprintable() and len(item) <= MAX_META_STRING_LEN
        )
        if plain_item and key.isascii() and key.isprintable():
            clean[key] = item
        elif isinstance(item, str) and (has_bad_chars(item) or len(item) > MAX_META_STRING_LEN):
            removed.append(removal(f"{prefix}.{key}", "invalid_characters"))
        elif has_bad_chars(key):
            removed.append(removal(f"{prefix}.{key}", "invalid_key"))
        else:
            clean[key] = item
    return clean


def scrub_name(field: str, value: str, max_len: int, removed: list[dict[str, str]]) -> str:
    kept, reason = privacy.scrub_name(value)
    if reason is None and (len(kept) > max_len or has_bad_chars(kept)):
        kept, reason = privacy.REDACTED_NAME, "too_long"
    if reason is not None:
        removed.append(removal(field, reason))
    return kept


def scrub_message(value: str | None, removed: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    kept, reason = privacy.scrub_message(value)
    if kept is not None and (has_bad_chars(kept.replace("\n", " ").replace("\t", " ")) or len(kept) > MAX_MESSAGE_LEN):
        kept, reason = None, reason or "invalid_characters"
    if reason is not None:
        removed.append(removal("message", reason))
    return kept


