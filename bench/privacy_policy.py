"""Micro-benchmark of the privacy policy: microseconds per metadata object, name and message.

The Ingest API runs the policy on every event (bar: >= 20,000 steps/s on 2 cores, end to end), and the
SDK runs it in its worker thread. This prints the cost of one call for typical and hostile inputs,
with warm caches (the steady state: keys and labels recur) and with caches defeated (every value new).

    .venv/bin/python bench/privacy_policy.py
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable

from agenttracer.privacy import policy, scrub_message, scrub_metadata, scrub_name

TYPICAL = {"tool": "web_search", "model": "gpt-4o-mini", "http_status": 200, "retries": 1, "cached": False}
IDS = {
    "order_id": "ORD-2024-000123",
    "request_id": "550e8400-e29b-41d4-a716-446655440000",
    "started_ms": 1732521600000,
    "region": "us-east-1",
    "prompt_tokens": 812,
}
HOSTILE = {
    "userPrompt": "Can you help me reset the password on my account?",
    "contact": "alice.smith%40example.com",
    "card": "4111 1111 1111 1111",
    "phone": "+1 (415) 555-0132",
    "auth": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "note": "ｃａｌｌ\u200b ５５５\u200b－０１３２",
    "nested": {"a": [1, 2, 3]},
}
MESSAGE = "Rate limited by provider (429), retry budget exhausted after 3 attempts"
HOSTILE_MESSAGE = "Refund failed for alice@example.com, card 4111 1111 1111 1111, from 203.0.113.42"


def clear_caches() -> None:
    policy._key_cache.clear()
    policy._label_cache.clear()


def per_call_us(fn: Callable[[], object], *, cold: bool = False, n: int = 20_000, repeats: int = 5) -> float:
    """Best-of-``repeats`` median-free timing: the minimum is the least disturbed by the shared machine."""
    runs = []
    for _ in range(repeats):
        if cold:
            clear_caches()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs)


def fresh_values(n: int) -> Callable[[], object]:
    """Every call sees new values (a new UUID, order number and timestamp), as per-event ids do.

    The inputs are made before timing starts, so only the policy is measured.
    """
    inputs = [
        {
            "tool": "web_search",
            "request_id": str(uuid.UUID(int=i * 7919)),
            "order": f"ORD-2024-{i % 999999:06d}",
            "ts": str(1732521600000 + i),
            "http_status": 200,
        }
        for i in range(n * 5)
    ]
    feed = iter(inputs)
    return lambda: scrub_metadata(next(feed))


def main() -> None:
    rows = [
        ("reference: dict(metadata) copy, 5 keys", per_call_us(lambda: dict(TYPICAL))),
        ("metadata, typical 5 keys (warm)", per_call_us(lambda: scrub_metadata(TYPICAL))),
        ("metadata, ids/timestamps 5 keys (warm)", per_call_us(lambda: scrub_metadata(IDS))),
        ("metadata, 5 keys with fresh ids every call", per_call_us(fresh_values(10_000), n=10_000)),
        (
            "metadata, typical 5 keys (caches cleared every run)",
            per_call_us(lambda: scrub_metadata(TYPICAL), cold=True),
        ),
        ("metadata, hostile 8 keys", per_call_us(lambda: scrub_metadata(HOSTILE), n=5_000)),
        ("name, plain", per_call_us(lambda: scrub_name("lookup_order"))),
        ("name, hostile", per_call_us(lambda: scrub_name("alice@example.com"), n=10_000)),
        ("message, operator text", per_call_us(lambda: scrub_message(MESSAGE), n=10_000)),
        ("message, hostile (3 redactions)", per_call_us(lambda: scrub_message(HOSTILE_MESSAGE), n=5_000)),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'privacy policy':<{width}}  µs/call   (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for label, us in rows:
        print(f"{label:<{width}}  {us:7.2f}")
    typical = statistics.mean(us for label, us in rows[1:4])
    print(
        f"\nat ~{typical:.1f} µs per step's metadata, one core spends {typical * 20_000 / 1e6:.0%} of a second on the "
        "policy for 20,000 steps"
    )


if __name__ == "__main__":
    main()
