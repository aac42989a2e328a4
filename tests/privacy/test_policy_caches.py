"""The policy's caches only ever repeat the rules' own decisions.

``scrub_metadata`` decides the common entry (a key already classified as plain, with a value already
found storable or a small int) from its caches without running the rules again. Whatever the caches
hold, every input must get exactly the answer the rules give with empty caches: same kept entries
(order and types included), same removals.
"""

from __future__ import annotations

from typing import Any

from agenttracer.privacy import policy, scrub_metadata
from tests.privacy import corpus_data


def cold(metadata: dict[Any, Any]) -> Any:
    policy._key_cache.clear()
    policy._label_cache.clear()
    return typed(scrub_metadata(metadata))


def typed(result: Any) -> Any:
    kept, removed = result
    return [(k, type(v).__name__, v) for k, v in kept.items()], removed


def inputs() -> list[dict[Any, Any]]:
    out: list[dict[Any, Any]] = []
    for entry in [*corpus_data.hostile(), *corpus_data.benign()]:
        value = entry["value"]
        out.append({"field": value, "model": value, "tokens_in": 12})
        out.append({value[:64]: 1, "ok": value, "prompt_tokens": value})
    out += [
        {"a": 1, "b": True, "c": 1.0, "d": -0.0, "e": 10**8, "f": -(10**8) + 1, "g": 2**53, "h": "x"},
        {"order_id": 123456789, "ref_a": 14155550132, "ref_b": 4111111111111111, "ref_c": -14155550132},
        {"count": True, "prompt_tokens": 1, "token_count": "7", "httpStatus": 1, "http_status": 2},
        {f"k{i}": i for i in range(40)},
        {f"k{i}": "v" for i in range(300)},
    ]
    return out


def test_warm_caches_give_the_rules_answers() -> None:
    cases = inputs()
    expected = [cold(metadata) for metadata in cases]
    policy._key_cache.clear()
    policy._label_cache.clear()
    for _ in range(2):  # the second pass runs entirely on warm caches
        for metadata, want in zip(cases, expected, strict=True):
            assert typed(scrub_metadata(metadata)) == want, metadata
