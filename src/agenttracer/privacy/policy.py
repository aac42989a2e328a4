"""The policy itself: what of a metadata object, a name or a failure message may be stored.

Three shapes of input, three treatments:

* metadata (``scrub_metadata``): each entry is kept whole or dropped whole, with a reason code. Keys
  are normalised (camelCase and '-' to snake_case); values are scalars; strings are normalised and
  must pass every detector and the prose rule.
* names (``scrub_name``: step, tool and agent names, versions, environments, exception class names):
  kept in normalised form or replaced by ``[redacted]``.
* failure messages (``scrub_message``): offending spans are replaced by ``[redacted:<reason>]``; a
  message with more than 24 words is dropped; the result is capped at 256 characters.

Every function is total (it never raises: on an internal error it keeps nothing and says
``policy_error``) and idempotent (its output passes it again unchanged). Decisions that keep data
are cached in small bounded dictionaries, because the same keys and labels recur on every event.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from agenttracer.model import (
    MAX_MESSAGE_LEN,
    MAX_META_KEY_LEN,
    MAX_META_KEYS,
    MAX_META_NUMBER,
    MAX_META_STRING_LEN,
    MAX_NAME_LEN,
)
from agenttracer.privacy import reasons as R
from agenttracer.privacy.detectors import find_reason, find_spans
from agenttracer.privacy.prose import (
    is_prose,
    is_prose_message,
    may_be_prose,
    word_count,
)
from agenttracer.privacy.text import is_corrupt, normalize_text

Scalar = bool | int | float | str

REDACTED_NAME = "[redacted]"
MAX_SAFE_INT = MAX_META_NUMBER  # model.py's metadata number rule
MAX_MESSAGE_WORDS = 24
MAX_MESSAGE_SCAN = 1024  # characters of a message examined at all; the rest is cut before scrubbing
MAX_KEY_WORDS = 7  # "what_is_the_status_of_my_order" is a sentence, not a key
MAX_EXAMINED_KEYS = 256  # past this, entries are counted, not examined (bounded work per event)
_CACHE_LIMIT = 4096

_KEY_RE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_CAMEL_UPPER_RUN = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_KEY_DIGIT_RUN = re.compile(r"\d{6,}")
_KEY_SPLIT = re.compile(r"[_.]")

_FORBIDDEN_WORDS = (
    "prompt completion response output input message content text query question answer document "
    "chunk context thought reasoning password secret token cookie email phone address ssn "
    "passwd passphrase credential authorization"
).split()
# Whole tokens (singular and plural).
FORBIDDEN_TOKENS = frozenset(_FORBIDDEN_WORDS + [w + "s" for w in _FORBIDDEN_WORDS] + ["queries", "addresses"])
# Multi-token names, matched on token boundaries.
FORBIDDEN_PHRASES = ("api_key", "chain_of_thought", "access_key", "private_key", "secret_key", "user_input")
# Run-together spellings ("userprompt", "apikey"), matched anywhere in the key with separators removed.
FORBIDDEN_SUBSTRINGS = ("prompt", "password", "passwd", "apikey", "secret", "completion", "cookie", "authoriz", "email")
# A forbidden key that also names a count may hold a number: prompt_tokens, input_length, tokens_in.
COUNT_TOKENS = frozenset("tokens count counts len length size bytes chars characters words num total".split())

_key_cache: dict[str, tuple[str | None, str | None, bool]] = {}
_label_cache: dict[str, str] = {}


@dataclass(frozen=True)
class Removal:
    """One metadata entry (or field) the policy refused, by key and reason code — never by value.

    ``key`` is the normalised key, or ``[key N]`` (N = 1-based position in the input) when the key
    itself was invalid or sensitive, so that a refused key is never echoed either.
    """

    key: str
    reason: str


def normalize_key(raw: str) -> str:
    """``rawResponse`` -> ``raw_response``, ``HTTPStatus`` -> ``http_status``, ``x-request-id`` -> ``x_request_id``."""
    key = normalize_text(raw).strip()
    if key != key.lower():
        key = _CAMEL_LOWER_UPPER.sub(r"\1_\2", _CAMEL_UPPER_RUN.sub(r"\1_\2", key)).lower()
    return key.replace("-", "_")


def classify_key(raw: str) -> tuple[str | None, str | None, bool]:
    """``(normalised key or None, reason or None, numbers_only)`` for one metadata key."""
    cached = _key_cache.get(raw)
    if cached is not None:
        return cached
    decision = _classify_key(raw)
    if len(_key_cache) >= _CACHE_LIMIT:
        _key_cache.clear()
    _key_cache[raw] = decision
    return decision


def _classify_key(raw: str) -> tuple[str | None, str | None, bool]:
    if len(raw) > 4 * MAX_META_KEY_LEN or is_corrupt(raw):
        return None, R.INVALID_KEY, False
    text = normalize_text(raw)
    key = normalize_key(text)
    if not _KEY_RE.fullmatch(key):
        return None, R.INVALID_KEY, False
    tokens = _KEY_SPLIT.split(key)
    if (
        _KEY_DIGIT_RUN.search(key)
        or find_reason(text) is not None  # before snake_casing, which can split an AKIA… key or an IBAN
        or find_reason(key) is not None
        or sum(1 for t in tokens if len(t) > 1 and not t.isdigit()) > MAX_KEY_WORDS
    ):
        return None, R.SENSITIVE_KEY, False
    joined = "_" + "_".join(tokens) + "_"
    compact = key.replace("_", "").replace(".", "")
    forbidden = (
        any(t in FORBIDDEN_TOKENS for t in tokens)
        or any(f"_{p}_" in joined for p in FORBIDDEN_PHRASES)
        or any(s in compact for s in FORBIDDEN_SUBSTRINGS)
    )
    if not forbidden:
        return key, None, False
    if any(t in COUNT_TOKENS for t in tokens):
        return key, None, True
    return key, R.FORBIDDEN_KEY, False


def reportable_key(key: object, position: int) -> str:
    """How a refused key or field name may be shown back to the user: its normalised form when that is
    a valid, non-sensitive key, otherwise ``[key N]`` (N = 1-based position) — never the key itself."""
    try:
        if isinstance(key, str):
            normalised, _, _ = classify_key(key)
            if normalised is not None:
                return normalised
    except Exception:
        pass
    return f"[key {position}]"


def check_label(value: str, max_len: int = MAX_META_STRING_LEN) -> tuple[str | None, str | None]:
    """``(normalised text, None)`` if a short string may be stored, else ``(None, reason)``."""
    cached = _label_cache.get(value)
    if cached is not None and len(cached) <= max_len:
        return cached, None
    if len(value) > 4 * max_len:  # bounded work: NFKC never shrinks text by that much
        return None, R.TOO_LONG
    if is_corrupt(value):
        return None, R.INVALID_CHARACTERS
    text = normalize_text(value)
    if len(text) > max_len:
        return None, R.TOO_LONG
    reason = find_reason(text)
    if reason is None and may_be_prose(text) and is_prose(text):
        reason = R.PROSE
    if reason is not None:
        return None, reason  # refused values are never cached: no secret outlives the call
    if len(value) <= 64:
        if len(_label_cache) >= _CACHE_LIMIT:
            _label_cache.clear()
        _label_cache[value] = text
    return text, None


def _number_reason(value: int) -> str | None:
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return R.INT_OUT_OF_RANGE
    # Numbers can carry a card or an 11-digit phone number too; 9-10 digit ids (2**32 - 1 included: a
    # number is a count or an id, unlike a 10-digit string) and 13-digit timestamps pass.
    if value >= 10**10 or value <= -(10**10):
        return find_reason(str(abs(value)))
    return None


def check_value(value: object, numbers_only: bool = False) -> tuple[Scalar | None, str | None]:
    """The policy's decision on one metadata value: ``(value as stored, None)`` or ``(None, reason)``.
    ``numbers_only`` for a key that names a count of content (``classify_key``'s third answer)."""
    try:
        return _check_value(value, numbers_only)
    except Exception:
        return None, R.POLICY_ERROR


def _check_value(value: object, numbers_only: bool) -> tuple[Scalar | None, str | None]:
    # The two commonest cases first (exact types), decided exactly as the general rules below decide them.
    if type(value) is str and not numbers_only:
        return check_label(value)
    if type(value) is int and -(10**8) < value < 10**8:
        return value, None
    if isinstance(value, bool):
        return (None, R.COUNT_NOT_NUMERIC) if numbers_only else (value, None)
    if isinstance(value, int):
        number = int(value)
        return (None, reason) if (reason := _number_reason(number)) else (number, None)
    if isinstance(value, float):
        real = float(value)
        if not math.isfinite(real):
            return None, R.NON_FINITE
        if real.is_integer() and abs(real) >= 1e8:
            reason = R.INT_OUT_OF_RANGE if abs(real) > MAX_SAFE_INT else _number_reason(int(real))
            if reason is not None:
                return None, reason
        return real, None
    if numbers_only:
        return None, R.COUNT_NOT_NUMERIC
    if isinstance(value, str):
        return check_label(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return None, R.NESTED_VALUE
    return None, R.UNSUPPORTED_TYPE


def scrub_metadata(metadata: Mapping[str, object] | None) -> tuple[dict[str, Scalar], list[Removal]]:
    """Split metadata into what may be stored and what was removed (one reason code per key)."""
    try:
        return _scrub_metadata(metadata)
    except Exception:  # fail closed: keep nothing of an input the policy cannot evaluate
        return {}, [Removal("[metadata]", R.POLICY_ERROR)]


def _scrub_metadata(metadata: Mapping[str, object] | None) -> tuple[dict[str, Scalar], list[Removal]]:
    kept: dict[str, Scalar] = {}
    removed: list[Removal] = []
    if metadata is None:
        return kept, removed
    if not isinstance(metadata, Mapping):
        return kept, [Removal("[metadata]", R.UNSUPPORTED_TYPE)]
    key_cache, label_cache = _key_cache, _label_cache
    for position, (raw_key, value) in enumerate(metadata.items(), start=1):
        # The common entry, decided from the caches alone: a key already classified as allowed with a
        # small int, or (not a count key) with a label already found storable. These are the
        # decisions the rules below took for the same key and value; anything else takes the rules.
        if type(raw_key) is str and position <= MAX_EXAMINED_KEYS and len(kept) < MAX_META_KEYS:
            plain, reason, numbers_only = key_cache.get(raw_key) or (None, None, False)
            if plain is not None and reason is None and plain not in kept:
                if type(value) is int and -(10**8) < value < 10**8:
                    kept[plain] = value
                    continue
                if type(value) is str and not numbers_only:
                    text = label_cache.get(value)
                    if text is not None and len(text) <= MAX_META_STRING_LEN:
                        kept[plain] = text
                        continue
        if position > MAX_EXAMINED_KEYS:
            removed.append(Removal(f"[{len(metadata) - MAX_EXAMINED_KEYS} more keys]", R.TOO_MANY_KEYS))
            break
        if not isinstance(raw_key, str):
            removed.append(Removal(reportable_key(raw_key, position), R.INVALID_KEY))
            continue
        key, reason, numbers_only = classify_key(raw_key)
        if key is None:
            removed.append(Removal(reportable_key(raw_key, position), reason or R.INVALID_KEY))
            continue
        if reason is not None:
            removed.append(Removal(key, reason))
            continue
        if key in kept:
            removed.append(Removal(key, R.DUPLICATE_KEY))
            continue
        stored, reason = _check_value(value, numbers_only)
        if reason is not None or stored is None:
            removed.append(Removal(key, reason or R.UNSUPPORTED_TYPE))
        elif len(kept) >= MAX_META_KEYS:
            removed.append(Removal(key, R.TOO_MANY_KEYS))
        else:
            kept[key] = stored
    return kept, removed


def scrub_name(name: str) -> tuple[str, str | None]:
    """A storable step/tool/agent name (normalised) and None, or ``[redacted]`` and the reason code."""
    try:
        if not isinstance(name, str):
            return REDACTED_NAME, R.UNSUPPORTED_TYPE
        text, reason = check_label(name, MAX_NAME_LEN)
        if text is None:
            return REDACTED_NAME, reason or R.POLICY_ERROR
        return text, None
    except Exception:
        return REDACTED_NAME, R.POLICY_ERROR


# A quoted passage of three words or more inside a message is most likely echoed content
# ("Model refused: 'I cannot help with that'"). Apostrophes inside words ("can't") do not open quotes.
_QUOTED = re.compile(r"(?<!\w)[\"'`“‘«„]([^\"'`“”‘’«»„\n]{1,256}?)[\"'`”’»“](?!\w)")
_MARKER = "[redacted:{}]"


def scrub_message(message: str | None) -> tuple[str | None, str | None]:
    """A storable failure message (or None) and the reason code of the first thing removed from it."""
    if message is None:
        return None, None
    try:
        if not isinstance(message, str):
            return None, R.UNSUPPORTED_TYPE
        if is_corrupt(message):
            return None, R.INVALID_CHARACTERS
        normalised = normalize_text(message[:MAX_MESSAGE_SCAN])
        text, reason = _message_pass(normalised)
        if text == normalised:  # nothing removed: the pass is its own fixed point
            return text, reason
        # Redaction and the length cap can, rarely, create a new finding; settle on a fixed point.
        for _ in range(3):
            if text is None:
                return None, reason
            again, second = _message_pass(text)
            if again == text:
                return text, reason
            text, reason = again, reason or second
        return None, reason or R.POLICY_ERROR
    except Exception:
        return None, R.POLICY_ERROR


def _message_pass(text: str) -> tuple[str | None, str | None]:
    if is_prose_message(text, MAX_MESSAGE_WORDS):
        return None, R.PROSE
    spans = find_spans(text)
    if "'" in text or '"' in text or "`" in text or not text.isascii():
        spans.extend((m.start(), m.end(), R.PROSE) for m in _QUOTED.finditer(text) if word_count(m.group(1)) >= 3)
    reason: str | None = None
    if spans:
        spans.sort()
        reason = spans[0][2]
        parts: list[str] = []
        cursor = 0
        for start, end, why in spans:
            if start < cursor:  # overlaps a span already redacted
                if end > cursor:
                    cursor = end
                continue
            parts.append(text[cursor:start])
            parts.append(_MARKER.format(why))
            cursor = end
        parts.append(text[cursor:])
        text = "".join(parts)
    if len(text) > MAX_MESSAGE_LEN:
        cut = MAX_MESSAGE_LEN
        marker = text.rfind("[", 0, cut)
        if marker != -1 and text.startswith("[redacted:", marker) and text.find("]", marker) >= cut:
            cut = marker  # never leave half a marker behind
        text = text[:cut]
        reason = reason or R.TOO_LONG
    return text, reason
