"""The privacy policy: what metadata, names and messages AgentTracer may store.

One policy, pure functions, standard library only. The SDK applies it in its background worker before
anything leaves the agent's process; the Ingest API applies it again to every event before storage;
the schema (bounded columns, no free-text column) is the third layer. ``docs/data-flow.md`` describes
all three and every reason code.

Public interface (stable; the SDK and the server code against it):

Every function below is total: it never raises, and an input it cannot evaluate is refused with the
reason ``policy_error`` (fail closed). Callers need no ``try``/``except`` around them.

* ``scrub_metadata(metadata) -> (kept, [Removal(key, reason)])``
* ``scrub_name(name) -> (name or "[redacted]", reason or None)``
* ``scrub_message(message) -> (message or None, reason or None)``
* ``reportable_key(key, position)``: how to name a refused key or field back to the user
* ``REASONS``: every reason code with its explanation; ``MAX_STORED_STRING_LEN``: the longest string
  the policy ever lets through, which the schema test holds every string column to.

Layout: ``text`` (normalisation), ``detectors`` (PII, secrets), ``prose``, ``policy`` (the decisions),
``reasons`` (the codes), ``otel`` (the allow-list of OpenTelemetry attributes, for ``/v1/traces`` and
for exporters that strip content in the agent's process).
"""

from __future__ import annotations

from agenttracer.model import MAX_ID_LEN, MAX_MESSAGE_LEN, MAX_META_STRING_LEN, MAX_NAME_LEN
from agenttracer.privacy.detectors import find_reason, find_spans
from agenttracer.privacy.policy import (
    REDACTED_NAME,
    Removal,
    Scalar,
    check_label,
    classify_key,
    normalize_key,
    reportable_key,
    scrub_message,
    scrub_metadata,
    scrub_name,
)
from agenttracer.privacy.prose import is_prose
from agenttracer.privacy.reasons import REASONS
from agenttracer.privacy.text import normalize_text

# The longest string the policy stores anywhere (a failure message). The schema test fails on any
# string column longer than this, and on any unbounded text column.
MAX_STORED_STRING_LEN = max(MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_META_STRING_LEN, MAX_ID_LEN)

__all__ = [
    "MAX_STORED_STRING_LEN",
    "REASONS",
    "REDACTED_NAME",
    "Removal",
    "Scalar",
    "check_label",
    "classify_key",
    "find_reason",
    "find_spans",
    "is_prose",
    "normalize_key",
    "normalize_text",
    "reportable_key",
    "scrub_message",
    "scrub_metadata",
    "scrub_name",
]
