"""The hand-written fast path (``server/ingest/fastpath.py``) decides exactly as the pydantic models do.

Every event of a corpus — realistic good events, every field of a good event replaced by each of a
list of odd values or left out, hostile metadata and names, and fuzzed timestamps — goes through
``convert_event`` (fast path first) and through ``convert_with_model`` (the models only). The two
must agree on everything: accepted or rejected, the errors (field and rule), the removed keys, and
every value that would be stored, down to its Python type and time zone.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import pytest

from agenttracer.model import MAX_ATTEMPT, MAX_LATENCY_MS, MAX_SEQ, STEP_TYPE_ALIASES, StepType
from agenttracer.server.ingest.events import convert_event, convert_with_model
from agenttracer.server.ingest.fastpath import fast_convert, parse_utc_py310
from tests.privacy import corpus_data
from tests.store.test_writer_sql import wire_stamps
from tests.support.events import failure, new_run_id, run_end, run_start, step

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
RID = "3f2b9c1e-8a4d-4c6e-9f1a-2b3c4d5e6f70"


def canonical(value: Any) -> Any:
    """A comparable form that also tells 500 from 500.0, an enum from its value and UTC from +00:00."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), repr(value.tzinfo))
    if isinstance(value, Enum):
        return ("enum", type(value).__name__, value.value)
    return (type(value).__name__, value)


def outcome(converted: tuple[dict[str, Any], Any]) -> Any:
    result, item = converted
    if item is None:
        return canonical(result), None
    fields = (item.index, item.kind, item.run_id, item.time, item.values, item.meta_removed)
    return canonical(result), canonical(fields)


def assert_same(raw: Any, index: int = 0) -> bool:
    """Both paths agree on ``raw``; returns whether the fast path handled it itself."""
    fast = outcome(convert_event(index, raw, NOW))
    model = outcome(convert_with_model(index, raw, NOW))
    assert fast == model, f"paths disagree on {raw!r}"
    return fast_convert(index, raw, NOW) is not None


def full_step(**kw: Any) -> dict[str, Any]:
    return step(
        RID,
        7,
        attempt=2,
        retry_of_seq=6,
        parent_seq=1,
        status="error",
        error_class="TimeoutError",
        failure_code="timeout",
        metadata={"http_status": 504, "model": "gpt-4o-mini", "tokens_in": 12, "ratio": 0.5, "cached": True},
        **kw,
    )


ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    7,
    MAX_SEQ,
    MAX_SEQ + 1,
    2**63,
    0.0,
    -0.0,
    -0.5,
    1.5,
    500,
    float("nan"),
    float("inf"),
    1.7976931348623157e308,
    MAX_LATENCY_MS,
    MAX_LATENCY_MS + 0.001,
    "",
    " ",
    "x",
    "ok",
    "error",
    "tool",
    "Tool",
    "retrieve",
    "RETRIEVE",
    "tool-call",
    "success",
    "running",
    "timeout",
    "Not A Code!",
    "a" * 64,
    "a" * 65,
    "a" * 129,
    "a" * 4097,
    "bad\x00name",
    "tab\tname",
    "lone\ud800surrogate",
    "del\x7f",
    "ＴｏｏｌＮａｍｅ",
    "call me at alice@example.com",
    "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
    "What is my account balance?",
    RID,
    RID.upper(),
    RID + "\n",
    "3f2b9c1e8a4d4c6e9f1a2b3c4d5e6f70",
    "2026-11-25T09:00:00Z",
    "2026-11-25T09:00:03.5Z",
    [],
    {},
    [1, 2],
    {"a": 1},
]

TIMESTAMPS = [
    "2026-11-25T09:00:01Z",
    "2026-11-25T09:00:01.123456Z",
    "2026-11-25T09:00:01.1Z",
    "2026-11-25T09:00:01.1234567Z",
    "2026-11-25T09:00:01+00:00",
    "2026-11-25T09:00:01.5-00:00",
    "2026-11-25T10:00:01+01:00",
    "2026-11-25T09:00:01",
    "2026-11-25t09:00:01z",
    "2026-11-25 09:00:01Z",
    "2026-11-25T09:00Z",
    "2026-11-25T09:00:60Z",
    "2026-11-25T24:00:00Z",
    "2026-02-30T09:00:00Z",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00Z",
    "1970-01-01T01:00:00+01:00",
    "2026-11-26T10:00:00Z",  # NOW + MAX_FUTURE: the latest accepted time
    "2026-11-26T10:00:00.000001Z",
    "2026-11-26T11:00:00.000001+01:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-05:00",
    "2026-11-25T09:00:01,5Z",
    "20261125T090001Z",
    "2026-W48-3T09:00:01Z",
    "２０２６-11-25T09:00:01Z",
    "1764061201",
    "2026-11-25T09:00:01.Z",
    "2026-11-25T09:00:01.123456Z ",
]


def good_events() -> list[dict[str, Any]]:
    rid = new_run_id()
    events: list[dict[str, Any]] = [
        run_start(rid, metadata={"region": "eu-west-1", "tenant_tier": "pro"}),
        run_start(rid),
        step(rid, 1),
        step(rid, 2, step_type="retrieval", name="vector_search", metadata={"result_count": 3, "index": "kb-v3"}),
        step(rid, 3, step_type="llm", name="claude-sonnet", metadata={"model": "claude", "tokens_in": 3656}),
        step(rid, 4, status="error", error_class="TimeoutError", failure_code="timeout"),
        step(rid, 5, attempt=2, retry_of_seq=4, parent_seq=1, failure_code="my_custom_code"),
        full_step(),
        run_end(rid, status="partial", metadata={"region": "eu-west-1"}),
        run_end(rid, status="failure"),
        run_end(rid),
    ]
    events += [step(rid, 9, step_type=alias) for alias in STEP_TYPE_ALIASES]
    events += [step(rid, 9, step_type=t.value) for t in StepType]
    events += [step(rid, MAX_SEQ, attempt=MAX_ATTEMPT, retry_of_seq=MAX_SEQ - 1)]
    # Unknown fields are reported and dropped; the event is kept.
    events += [step(rid, 9, prompt="secret text", extra_field=1), run_start(rid, userPrompt="x")]
    # Values the policy redacts or removes: names replaced, metadata keys dropped by reason.
    events += [
        step(rid, 9, name="email alice@example.com please"),
        step(rid, 9, name="x" * 200),
        step(rid, 9, error_class="sk-proj-abcdefghijklmnopqrstuvwxyz123456"),
        step(rid, 9, metadata={"user_prompt": "hello", "prompt_tokens": 12, "nested": {"a": 1}, "n": None}),
        step(rid, 9, metadata="not an object"),
        step(rid, 9, metadata={"k": "tab\there", "ok": 1, "bad\ud800key": 2, "HTTPStatus": 200, "http_status": 201}),
        run_start(rid, agent_id="alice@example.com"),
        run_end(rid, environment="call me at +1 415 555 0132"),
    ]
    return events


def test_realistic_and_unusual_good_events_agree_and_mostly_take_the_fast_path() -> None:
    events = good_events()
    handled = [assert_same(raw, i) for i, raw in enumerate(events)]
    # Not a vacuous comparison: the plain SDK-shaped events really went the fast way.
    assert all(handled[:11])
    assert sum(handled) >= len(events) - 6


@pytest.mark.parametrize("base", ["step", "full_step", "run_start", "run_end"])
def test_every_field_replaced_by_odd_values_or_missing(base: str) -> None:
    template = {
        "step": step(RID, 7),
        "full_step": full_step(),
        "run_start": run_start(RID, metadata={"region": "eu"}),
        "run_end": run_end(RID, metadata={"region": "eu"}),
    }[base]
    assert assert_same(template)
    extra = {"seq": [6, 8], "retry_of_seq": [6, 7], "parent_seq": [6, 7], "attempt": [MAX_ATTEMPT, MAX_ATTEMPT + 1]}
    for field in [*template, "attempt", "retry_of_seq", "parent_seq", "error_class", "failure_code", "metadata"]:
        missing = {k: v for k, v in template.items() if k != field}
        assert_same(missing)
        for value in [*ODD_VALUES, *TIMESTAMPS, *extra.get(field, [])]:
            assert_same({**template, field: value})


def test_timestamps_agree_including_the_order_rule() -> None:
    for started in TIMESTAMPS:
        for ended in ("2026-11-25T09:00:01Z", "2026-11-25T09:00:01.1Z", "2026-11-25T09:00:00.999999Z"):
            assert_same(step(RID, 3, started_at=started, ended_at=ended))
        assert_same(run_start(RID, started_at=started))
        assert_same(run_end(RID, ended_at=started))


def test_fuzzed_timestamps_agree() -> None:
    rng = random.Random(8)
    digits = "0123456789"
    for _ in range(3000):
        parts = [
            "".join(rng.choice(digits) for _ in range(4)),
            "-",
            f"{rng.randint(0, 13):02d}",
            "-",
            f"{rng.randint(0, 32):02d}",
            rng.choice("TT t"),
            f"{rng.randint(0, 25):02d}",
            ":",
            f"{rng.randint(0, 61):02d}",
            ":",
            f"{rng.randint(0, 61):02d}",
            rng.choice(["", "." + "".join(rng.choice(digits) for _ in range(rng.randint(0, 8)))]),
            rng.choice(["Z", "Z", "+00:00", "-00:00", "+01:00", "", "z"]),
        ]
        stamp = "".join(parts)
        assert_same(step(RID, 3, started_at=stamp, ended_at="9999-12-31T23:59:59Z"))


def test_the_privacy_corpus_agrees_in_names_metadata_and_identity() -> None:
    for i, entry in enumerate([*corpus_data.hostile(), *corpus_data.benign()]):
        value = entry["value"]
        assert_same(step(RID, 2, name=value, error_class=value[:128], metadata={"note": value, "k": 1}), i)
        assert_same(step(RID, 2, metadata={value[:64]: 1, "ok": value}), i)
        assert_same(run_start(RID, agent_id=value[:128], metadata={"region": value}), i)
        assert_same(run_end(RID, agent_version=value[:64]), i)


def test_events_the_fast_path_never_takes() -> None:
    # Failures and anything that is not an object always go through the models.
    for raw in (failure(RID), failure(RID, step_seq=2, message="upstream timed out"), [], "step", None, 3):
        assert fast_convert(0, raw, NOW) is None
        assert_same(raw)


def test_the_ascii_shortcut_of_has_bad_chars_agrees_with_its_pattern() -> None:
    from agenttracer.model import _BAD_CHARS_RE, has_bad_chars

    for code in [*range(0x300), *range(0xD7F0, 0xE010), 0xFEFF, 0x10FFFF]:
        char = chr(code)
        for text in (char, f"ab{char}", f"{char}cd", f"x{char}y"):
            assert has_bad_chars(text) == (_BAD_CHARS_RE.search(text) is not None), hex(code)
    assert not has_bad_chars("")


def test_the_python_3_10_timestamp_parser_equals_fromisoformat_on_every_accepted_spelling() -> None:
    # Python 3.10's fromisoformat rejects "Z" and 1-5 fraction digits; its stand-in must agree with 3.11's.
    stamps = wire_stamps()
    assert len(stamps) > 1000
    for text in stamps:
        assert parse_utc_py310(text) == datetime.fromisoformat(text), text
        assert parse_utc_py310(text).tzinfo == timezone.utc
