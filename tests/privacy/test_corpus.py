"""The adversarial corpus: no hostile string survives the policy, and benign look-alikes pass.

Figures (printed with ``pytest tests/privacy/test_corpus.py -s``): hostile strings kept (must be 0)
and benign values wrongly removed (must be <= 1%).
"""

from __future__ import annotations

import collections
import json

from agenttracer.privacy import scrub_message, scrub_metadata, scrub_name
from tests.privacy import corpus_data
from tests.privacy.corpus.generate import build

HOSTILE = corpus_data.hostile()
BENIGN = corpus_data.benign()


def test_the_committed_corpus_is_what_the_generator_produces() -> None:
    for name, rows in build().items():
        assert list(corpus_data.load(name)) == json.loads(json.dumps(rows)), name


def test_the_corpus_covers_every_category_in_several_spellings() -> None:
    assert len(HOSTILE) >= 500 and len(BENIGN) >= 1000
    spellings = collections.defaultdict(set)
    for entry in HOSTILE:
        spellings[entry["category"]].add(entry["spelling"])
    assert set(spellings) == {"email", "phone", "payment_card", "ssn", "iban", "ip_address", "secret", "prose"}
    for category, seen in spellings.items():
        if category != "prose":
            assert {"fullwidth", "zero_width", "embedded"} <= seen, category
    assert {"url_encoded", "double_encoded", "upper", "bracket_at"} <= spellings["email"]
    assert {"dashed", "digit_spaced", "joined"} <= spellings["payment_card"]
    benign_categories = {entry["category"] for entry in BENIGN}
    assert {
        "uuid4",
        "uuid7",
        "timestamp_ms",
        "id_9_10",
        "git_sha",
        "semver",
        "order_number",
        "http_code",
        "model",
        "tool",
        "host",
    } <= benign_categories


def hostile_kept() -> list[tuple[str, dict[str, str]]]:
    """Every (where, entry) for which a hostile string survived as a value, a name, a key or in a message."""
    kept = []
    for entry in HOSTILE:
        value = entry["value"]
        stored, removed = scrub_metadata({"field": value})
        if stored:
            kept.append(("metadata value", entry))
        stored, removed = scrub_metadata({value: 1})
        if stored or any(corpus_data.leaks(entry, r.key) for r in removed):
            kept.append(("metadata key", entry))
        name, _ = scrub_name(value)
        if corpus_data.leaks(entry, name) or name == value:
            kept.append(("name", entry))
        # Short operator prose is allowed in failure messages by design (docs/data-flow.md).
        if entry["category"] != "prose":
            message, _ = scrub_message(f"Step failed: {value} (attempt 2)")
            if message is not None and corpus_data.leaks(entry, message):
                kept.append(("message", entry))
    return kept


def benign_removed() -> list[dict[str, str]]:
    return [entry for entry in BENIGN if scrub_metadata({"value": entry["value"]})[1]]


def test_no_hostile_string_is_kept_anywhere() -> None:
    kept = hostile_kept()
    print(f"\nhostile strings kept: {len(kept)} of {len(HOSTILE)}")
    assert [(where, e["category"], e["spelling"], e["value"]) for where, e in kept] == []


def test_benign_look_alikes_pass() -> None:
    removed = benign_removed()
    rate = len(removed) / len(BENIGN)
    print(f"\nbenign values wrongly removed: {len(removed)} of {len(BENIGN)} ({rate:.2%})")
    assert rate <= 0.01, [(e["category"], e["value"]) for e in removed]


def test_benign_operator_messages_pass_unchanged() -> None:
    for entry in corpus_data.benign_messages():
        assert scrub_message(entry["value"]) == (entry["value"], None)


def test_hostile_strings_are_removed_for_their_own_reason() -> None:
    """The reason code names what was found (cards inside IBANs may say payment_card)."""
    mismatched = collections.Counter()
    for entry in HOSTILE:
        _, reason = scrub_name(entry["value"])
        if entry["category"] != "prose" and reason != entry["category"]:
            mismatched[(entry["category"], reason)] += 1
    assert sum(mismatched.values()) <= 0.02 * len(HOSTILE), mismatched
