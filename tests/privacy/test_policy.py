"""The privacy policy's rules, one behaviour per test: keys, values, names, failure messages."""

from __future__ import annotations

import math
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from agenttracer import privacy
from agenttracer.privacy import REASONS, Removal, scrub_message, scrub_metadata, scrub_name
from agenttracer.privacy.policy import check_value

ROOT = Path(__file__).resolve().parents[2]


def reasons_of(removed: list[Removal]) -> dict[str, str]:
    return {r.key: r.reason for r in removed}


# --- keys -------------------------------------------------------------------------------------------------


def test_camel_case_and_dashes_normalise_to_snake_case() -> None:
    kept, removed = scrub_metadata({"httpStatus": 200, "HTTPMethod": "GET", "x-request-id": "abc", "retryCount": 2})
    assert kept == {"http_status": 200, "http_method": "GET", "x_request_id": "abc", "retry_count": 2}
    assert removed == []


@pytest.mark.parametrize(
    "key",
    [
        "prompt",
        "user_prompt",
        "rawResponse",
        "llm.output",
        "input",
        "messages",
        "content",
        "chain_of_thought",
        "reasoning",
        "api_key",
        "apiKey",
        "Authorization",
        "cookie",
        "user_email",
        "phone",
        "billing_address",
        "ssn",
        "password",
        "db_password",
        "secret",
        "token",
        "answer",
        "documents",
        "chunk",
        "context",
        "question",
        "query",
        "userprompt",
        "retrieved_documents",
        "thought",
    ],
)
def test_forbidden_names_are_refused_whole_or_as_a_token(key: str) -> None:
    kept, removed = scrub_metadata({key: "x"})
    assert kept == {}
    assert [r.reason for r in removed] == ["forbidden_key"]
    assert removed[0].key == privacy.normalize_key(key)


@pytest.mark.parametrize(
    "key", ["tokens_in", "input_tokens", "prompt_tokens", "completionTokens", "output_length", "tokens"]
)
def test_counts_of_forbidden_content_are_allowed_as_numbers_only(key: str) -> None:
    normalised = privacy.normalize_key(key)
    assert scrub_metadata({key: 1234}) == ({normalised: 1234}, [])
    assert scrub_metadata({key: 12.5}) == ({normalised: 12.5}, [])
    for value in ("1234", True, None, [1]):
        assert scrub_metadata({key: value}) == ({}, [Removal(normalised, "count_not_numeric")])


@pytest.mark.parametrize("key", ["", "9lives", "_private", "has space", "a" * 65, "ключ", "a/b", "a:b"])
def test_keys_outside_the_pattern_are_refused_and_reported_by_position(key: str) -> None:
    kept, removed = scrub_metadata({"ok": 1, key: "v"})
    assert kept == {"ok": 1}
    assert removed == [Removal("[key 2]", "invalid_key")]


@pytest.mark.parametrize(
    "key",
    [
        "alice@example.com",
        "user_4155550132",
        "ip.10.0.3.7",
        "sk-proj-ab12cd34ef56gh78ij90",
        "what_is_the_status_of_my_order_today",
    ],
)
def test_a_key_that_is_itself_content_is_never_echoed(key: str) -> None:
    _, removed = scrub_metadata({key: 1})
    assert removed == [Removal("[key 1]", removed[0].reason)]
    assert removed[0].reason in ("invalid_key", "sensitive_key")


def test_non_string_keys_are_refused() -> None:
    assert scrub_metadata({1: "a", ("t",): "b"}) == (
        {},
        [Removal("[key 1]", "invalid_key"), Removal("[key 2]", "invalid_key")],
    )  # type: ignore[dict-item]


def test_two_spellings_of_one_key_keep_the_first() -> None:
    assert scrub_metadata({"httpStatus": 200, "http_status": 500}) == (
        {"http_status": 200},
        [Removal("http_status", "duplicate_key")],
    )


def test_at_most_32_keys_are_kept() -> None:
    kept, removed = scrub_metadata({f"k{i}": i for i in range(40)})
    assert len(kept) == 32 and list(kept) == [f"k{i}" for i in range(32)]
    assert removed == [Removal(f"k{i}", "too_many_keys") for i in range(32, 40)]


def test_huge_objects_are_bounded_work() -> None:
    kept, removed = scrub_metadata({f"k{i}": i for i in range(10_000)})
    assert len(kept) == 32
    assert removed[-1] == Removal("[9744 more keys]", "too_many_keys")


# --- values -----------------------------------------------------------------------------------------------------


def test_scalars_pass_unchanged() -> None:
    meta = {"ok": True, "retries": 3, "latency": 12.5, "model": "gpt-4o-mini", "region": "eu-west-1", "empty": ""}
    assert scrub_metadata(meta) == (meta, [])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": 1}, "nested_value"),
        ([1, 2], "nested_value"),
        ((1,), "nested_value"),
        ({1}, "nested_value"),
        (None, "unsupported_type"),
        (b"bytes", "unsupported_type"),
        (object(), "unsupported_type"),
        (2**53, "int_out_of_range"),
        (-(2**60), "int_out_of_range"),
        (math.nan, "non_finite"),
        (math.inf, "non_finite"),
        (1e300, "int_out_of_range"),
        ("x" * 129, "too_long"),
    ],
)
def test_values_that_are_not_small_scalars_are_dropped(value: object, reason: str) -> None:
    assert scrub_metadata({"v": value}) == ({}, [Removal("v", reason)])


def test_numbers_can_carry_a_card_or_phone_number_too() -> None:
    assert scrub_metadata({"n": 4111111111111111})[1] == [Removal("n", "payment_card")]
    assert scrub_metadata({"n": 14155550132})[1] == [Removal("n", "phone")]
    # ids and millisecond timestamps are numbers operators need
    assert scrub_metadata({"a": 1732521600000, "b": 4294967295, "c": 123456789}) == (
        {"a": 1732521600000, "b": 4294967295, "c": 123456789},
        [],
    )


def test_stored_strings_are_the_normalised_spelling() -> None:
    kept, _ = scrub_metadata({"model": "gpt\u200b-４o-mini", "tool": "ｗｅｂ_search"})
    assert kept == {"model": "gpt-4o-mini", "tool": "web_search"}


def test_a_string_with_an_embedded_finding_is_dropped_whole() -> None:
    kept, removed = scrub_metadata({"note": "owner alice@example.com", "ref": "ORD-2024-000123"})
    assert kept == {"ref": "ORD-2024-000123"}
    assert removed == [Removal("note", "email")]


def test_labels_may_be_a_few_words_but_not_a_sentence() -> None:
    assert scrub_metadata({"agent": "Customer Support Agent"})[1] == []
    assert scrub_metadata({"q": "what is the refund policy for Canada"})[1] == [Removal("q", "prose")]
    assert scrub_metadata({"q": "Refunds take 14 days."})[1] == [Removal("q", "prose")]
    assert scrub_metadata({"q": "reset my password"})[1] == [Removal("q", "prose")]
    assert scrub_metadata({"err": "I/O error", "region": "us-east-1"})[1] == []


# --- names ------------------------------------------------------------------------------------------------------


def test_names_pass_in_normalised_form_or_are_replaced() -> None:
    assert scrub_name("lookup_order") == ("lookup_order", None)
    assert scrub_name("Search knowledge base") == ("Search knowledge base", None)
    assert scrub_name("lookup\u200b_order") == ("lookup_order", None)
    assert scrub_name("email alice@example.com") == ("[redacted]", "email")
    assert scrub_name("x" * 129) == ("[redacted]", "too_long")
    assert scrub_name(None) == ("[redacted]", "unsupported_type")  # type: ignore[arg-type]
    assert scrub_name("[redacted]") == ("[redacted]", None)


# --- failure messages -----------------------------------------------------------------------------------------


def test_operator_messages_pass_unchanged() -> None:
    for message in (
        "External API timeout after 30s",
        "Rate limited by provider (429), retry budget exhausted after 3 attempts",
    ):
        assert scrub_message(message) == (message, None)
    assert scrub_message(None) == (None, None)


def test_offending_spans_are_redacted_and_the_rest_kept() -> None:
    message = "Refund failed for alice@example.com, card 4111 1111 1111 1111, from 203.0.113.42"
    assert scrub_message(message) == (
        "Refund failed for [redacted:email], card [redacted:payment_card], from [redacted:ip_address]",
        "email",
    )


def test_quoted_passages_are_treated_as_echoed_content() -> None:
    assert scrub_message("Model refused: 'I cannot help with that request'") == (
        "Model refused: [redacted:prose]",
        "prose",
    )
    assert scrub_message("KeyError: 'customer_id'") == ("KeyError: 'customer_id'", None)
    assert scrub_message("Can't reach the vendor's API") == ("Can't reach the vendor's API", None)


def test_prose_messages_are_dropped_whole() -> None:
    assert scrub_message("Can you help me reset the password on my account") == (None, "prose")
    assert scrub_message("where is the order for the refund?") == (None, "prose")
    assert scrub_message(" ".join(["word"] * 25)) == (None, "prose")


def test_messages_are_capped_at_256_characters_after_scrubbing() -> None:
    message = "E" * 300
    assert scrub_message(message) == ("E" * 256, "too_long")
    long_with_secret = "x" * 250 + " sk-proj-ab12cd34ef56gh78ij90kl"
    text, reason = scrub_message(long_with_secret)
    assert text == "x" * 250 + " " and reason == "secret"  # the marker would not fit whole: nothing of it is kept


# --- robustness -----------------------------------------------------------------------------------------------


class Exploding(Mapping[str, object]):
    def __getitem__(self, key: str) -> object:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


def test_the_policy_fails_closed_instead_of_raising() -> None:
    assert scrub_metadata(Exploding()) == ({}, [Removal("[metadata]", "policy_error")])
    assert scrub_metadata(["not", "a", "mapping"]) == ({}, [Removal("[metadata]", "unsupported_type")])  # type: ignore[arg-type]
    assert scrub_message(12) == (None, "unsupported_type")  # type: ignore[arg-type]


def test_every_format_character_is_invisible_to_the_detectors() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in ("Cf", "Cs", "Cc") and char not in "\t\n\r":
            assert privacy.normalize_text("a" + char + "b") == "ab", hex(code)


def test_every_reason_code_is_documented() -> None:
    doc = (ROOT / "docs" / "data-flow.md").read_text(encoding="utf-8")
    missing = [code for code in REASONS if f"`{code}`" not in doc]
    assert missing == []


def test_corrupt_text_is_refused_not_repaired() -> None:
    assert scrub_metadata({"a": "x\x00y", "b": "x\udc80y", "ok\ud800": 1}) == (
        {},
        [Removal("a", "invalid_characters"), Removal("b", "invalid_characters"), Removal("[key 3]", "invalid_key")],
    )
    assert scrub_name("step\x07") == ("[redacted]", "invalid_characters")
    assert scrub_message("boom\x00") == (None, "invalid_characters")
    assert scrub_message("line one\nline two\tend") == ("line one\nline two\tend", None)


def test_refused_keys_are_reported_in_a_safe_form() -> None:
    assert privacy.reportable_key("stepName", 3) == "step_name"
    assert privacy.reportable_key("alice@example.com", 3) == "[key 3]"
    assert privacy.reportable_key("user_4155550132", 1) == "[key 1]"
    assert privacy.reportable_key(42, 2) == "[key 2]"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("4155550132", "phone"),  # ten digits joined, dialable in North America
        ("callback 2125550100", "phone"),
        ("https://api.example.com/v1/export?token=abc123", "secret"),
        ("https://hooks.example.com/cb?state=1&access_token=ya29", "secret"),
        ("https://bucket.example.com/o?X-Amz-Signature=4f6d2a", "secret"),
        ("https://files.example.com/d?sig=Qm9v", "secret"),
        ("U2VjcmV0LXBheWxvYWQtMTIzNDU2Nzg5MA==", "secret"),  # a base64 blob
        ("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08e3b0c442", "secret"),  # 72 hex digits
    ],
)
def test_labels_and_names_refuse_joined_phones_credential_urls_and_blobs(value: str, reason: str) -> None:
    assert check_value(value) == (None, reason)
    assert scrub_name(value) == ("[redacted]", reason)


@pytest.mark.parametrize(
    "value",
    [
        "1765100000",  # Unix seconds
        "4711327790",  # a 10-digit id whose exchange starts with 1: no one can dial it
        "https://api.example.com/v1/chat?max_tokens=256&page=2",
        "sha256:8c207ef408c8bf601c6f900f3b19f80ba4ae411d58281527cc1929bd527ebeda",
        "00-053397317744515832df873560a70335-50134ef2c8f3239c-01",
        "My-Agent-Pipeline-Version-2-Production-East",
    ],
)
def test_look_alikes_of_those_pass(value: str) -> None:
    assert check_value(value) == (value, None)
