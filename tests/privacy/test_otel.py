"""The OpenTelemetry allow-list: only known metadata keys survive, their values pass the one policy,
and nothing else is read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agenttracer.privacy import REASONS, classify_key, scrub_metadata
from agenttracer.privacy.otel import (
    EXCEPTION_EVENT_ATTRIBUTES,
    MAX_LABELS,
    RESOURCE_ATTRIBUTES,
    SPAN_ATTRIBUTES,
    Kind,
    filter_attributes,
    retry_attempt_from_tags,
)

CANARY = "CANARY-7f3a"

# The content keys the frameworks use (GenAI semconv, OpenInference, Pydantic AI, Logfire,
# OpenLLMetry/Traceloop, Vercel AI SDK, MLflow) and keys that merely look harmless.
CONTENT_KEYS = [
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.definitions",
    "gen_ai.tool.description",
    "gen_ai.prompt",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.role",
    "gen_ai.completion",
    "gen_ai.completion.0.content",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
    "gen_ai.conversation.id",
    "gen_ai.agent.description",
    "input.value",
    "output.value",
    "input.mime_type",
    "llm.input_messages.0.message.content",
    "llm.input_messages.0.message.role",
    "llm.output_messages.0.message.content",
    "llm.prompt_template.template",
    "llm.prompt_template.variables",
    "llm.invocation_parameters",
    "llm.tools.0.tool.json_schema",
    "retrieval.documents.0.document.content",
    "retrieval.documents.0.document.id",
    "embedding.embeddings.0.embedding.text",
    "tool.parameters",
    "tool.description",
    "pydantic_ai.all_messages",
    "final_result",
    "tool_arguments",
    "tool_response",
    "logfire.msg",
    "logfire.json_schema",
    "model_request_parameters",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "ai.prompt",
    "ai.prompt.messages",
    "ai.response.text",
    "mlflow.spanInputs",
    "mlflow.spanOutputs",
    "metadata",
    "tag.tags",
    "session.id",
    "user.id",
    "exception.message",
    "exception.stacktrace",
    "exception.escaped",
    "http.url",
    "url.full",
]


class Watched(Mapping[str, object]):
    """A mapping that records which keys' values were read."""

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> object:
        self.read.add(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def items(self):  # type: ignore[override]
        raise AssertionError("items() reads every value")

    def values(self):  # type: ignore[override]
        raise AssertionError("values() reads every value")


def test_every_stored_key_is_one_the_policy_accepts() -> None:
    for table in (SPAN_ATTRIBUTES, RESOURCE_ATTRIBUTES, EXCEPTION_EVENT_ATTRIBUTES):
        for otel_key, entry in table.items():
            normalised, reason, numbers_only = classify_key(entry.store_as)
            assert normalised == entry.store_as, otel_key
            assert reason is None, otel_key
            # A key the policy holds to numbers may only carry a numeric kind.
            if numbers_only:
                assert entry.kind in (Kind.COUNT, Kind.INT, Kind.NUMBER), otel_key


def test_docs_list_every_allow_listed_key() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "otlp.md").read_text()
    for table in (SPAN_ATTRIBUTES, RESOURCE_ATTRIBUTES, EXCEPTION_EVENT_ATTRIBUTES):
        for otel_key, entry in table.items():
            assert f"| `{otel_key}` | `{entry.store_as}` | {entry.kind.value} |" in doc, otel_key


def test_no_content_key_is_on_any_list() -> None:
    for key in CONTENT_KEYS:
        assert key not in SPAN_ATTRIBUTES and key not in RESOURCE_ATTRIBUTES and key not in EXCEPTION_EVENT_ATTRIBUTES


def test_content_keys_are_dropped_without_their_values_being_read() -> None:
    attrs = {key: f"{CANARY} {key} what the user typed" for key in CONTENT_KEYS}
    attrs.update({"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 12})
    watched = Watched(attrs)
    out = filter_attributes(watched, SPAN_ATTRIBUTES)
    assert out.kept == {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 12}
    assert out.stored == {"model": "gpt-4o-mini", "tokens_in": 12}
    assert out.dropped == len(CONTENT_KEYS)
    assert out.removed == ()
    assert watched.read == {"gen_ai.request.model", "gen_ai.usage.input_tokens"}
    assert CANARY not in repr(out)


def test_genai_span_keeps_its_metadata_under_stored_names() -> None:
    out = filter_attributes(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.finish_reasons": ["stop", "length"],
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "server.address": "api.openai.com",
            "server.port": 443,
            "error.type": "timeout",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.stream": False,
        },
        SPAN_ATTRIBUTES,
    )
    assert out.stored == {
        "operation": "chat",
        "provider": "openai",
        "model": "gpt-4o",
        "served_model": "gpt-4o-2024-08-06",
        "finish_reasons": ["stop", "length"],
        "tokens_in": 120,
        "tokens_out": 30,
        "server_host": "api.openai.com",
        "server_port": 443,
        "error_type": "timeout",
        "temperature": 0.2,
        "stream": False,
    }
    assert out.kept["gen_ai.response.finish_reasons"] == ("stop", "length")
    assert out.dropped == 0 and out.removed == ()


def test_openinference_and_pydantic_ai_keys() -> None:
    out = filter_attributes(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-3-5-sonnet",
            "llm.provider": "anthropic",
            "llm.token_count.prompt": 50,
            "llm.token_count.completion": 7,
            "llm.token_count.total": 57,
            "llm.token_count.completion_details.reasoning": 3,
            "tool.name": "lookup_order",
            "pydantic_ai.tool.retry.attempt": 1,
            "pydantic_ai.tool.retry.cause": "model_retry",
        },
        SPAN_ATTRIBUTES,
    )
    assert out.stored == {
        "span_kind": "LLM",
        "model": "claude-3-5-sonnet",
        "provider": "anthropic",
        "tokens_in": 50,
        "tokens_out": 7,
        "tokens_total": 57,
        "tokens_reasoning": 3,
        "tool_name": "lookup_order",
        "retry_attempt": 1,
        "retry_cause": "model_retry",
    }


def test_two_spellings_of_one_key_store_the_first() -> None:
    out = filter_attributes({"gen_ai.system": "openai", "gen_ai.provider.name": "azure.ai.openai"}, SPAN_ATTRIBUTES)
    assert out.stored == {"provider": "openai"}
    assert out.kept == {"gen_ai.system": "openai", "gen_ai.provider.name": "azure.ai.openai"}


def test_a_second_spelling_is_judged_by_the_policy_too() -> None:
    attrs = {"gen_ai.system": "openai", "gen_ai.provider.name": "ask me at a@b.example"}
    out = filter_attributes(attrs, SPAN_ATTRIBUTES)
    assert out.kept == {"gen_ai.system": "openai"}
    assert [(r.key, r.reason) for r in out.removed] == [("gen_ai.provider.name", "email")]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("gen_ai.request.model", "contact jane.doe@example.com", "email"),
        ("gen_ai.tool.name", "sk-proj-abcdefghijklmnopqrstuvwxyz012345", "secret"),
        ("gen_ai.agent.name", "Please summarise the attached contract for me and tell me what it means", "prose"),
        ("gen_ai.request.model", "x" * 200, "too_long"),
        ("gen_ai.request.model", "bad\x00model", "invalid_characters"),
        ("server.address", "10.1.2.3", "ip_address"),
        ("gen_ai.usage.input_tokens", "12", "unsupported_type"),
        ("gen_ai.usage.input_tokens", -1, "int_out_of_range"),
        ("gen_ai.usage.input_tokens", True, "unsupported_type"),
        ("gen_ai.usage.input_tokens", 1.5, "unsupported_type"),
        ("gen_ai.usage.input_tokens", 2**60, "int_out_of_range"),
        ("gen_ai.request.temperature", float("nan"), "non_finite"),
        ("gen_ai.request.model", 42, "unsupported_type"),
        ("gen_ai.request.model", ["a"], "unsupported_type"),
        ("gen_ai.request.stream", "yes", "unsupported_type"),
        ("gen_ai.response.finish_reasons", ["stop"] * (MAX_LABELS + 1), "too_long"),
        ("gen_ai.response.finish_reasons", ["stop", 3], "unsupported_type"),
        ("gen_ai.response.finish_reasons", ["call me on +1 415 555 0134"], "phone"),
        ("server.port", 4111111111111111, "payment_card"),
    ],
)
def test_allow_listed_values_still_pass_the_policy(key: str, value: object, reason: str) -> None:
    out = filter_attributes({key: value}, SPAN_ATTRIBUTES)
    assert out.kept == {} and out.stored == {}
    assert [(r.key, r.reason) for r in out.removed] == [(key, reason)]
    assert reason in REASONS
    assert out.dropped_total == 1


def test_integral_floats_count_and_strings_are_normalised() -> None:
    out = filter_attributes({"gen_ai.usage.output_tokens": 7.0, "gen_ai.request.model": "ｇｐｔ-4"}, SPAN_ATTRIBUTES)
    assert out.stored == {"tokens_out": 7, "model": "gpt-4"}


def test_resource_and_exception_event_lists() -> None:
    res = filter_attributes(
        {
            "service.name": "support-bot",
            "service.version": "1.4.2",
            "deployment.environment.name": "prod",
            "telemetry.sdk.language": "python",
            "host.name": "ip-10-0-0-1",
            "process.command_args": ["python", "agent.py", f"--prompt={CANARY}"],
        },
        RESOURCE_ATTRIBUTES,
    )
    assert res.stored == {
        "service": "support-bot",
        "service_version": "1.4.2",
        "environment": "prod",
        "sdk_language": "python",
    }
    assert res.dropped == 2
    exc = filter_attributes(
        Watched(
            {
                "exception.type": "httpx.ReadTimeout",
                "exception.message": f"{CANARY} could not read",
                "exception.stacktrace": f"Traceback ... {CANARY}",
                "exception.escaped": True,
            }
        ),
        EXCEPTION_EVENT_ATTRIBUTES,
    )
    assert exc.stored == {"error_class": "httpx.ReadTimeout"}
    assert exc.dropped == 3
    assert list(EXCEPTION_EVENT_ATTRIBUTES) == ["exception.type"]


def test_empty_and_odd_inputs() -> None:
    assert filter_attributes(None, SPAN_ATTRIBUTES).kept == {}
    assert filter_attributes({}, SPAN_ATTRIBUTES).dropped == 0
    out = filter_attributes({1: "x", ("gen_ai", "system"): "y", "gen_ai.system": "openai"}, SPAN_ATTRIBUTES)  # type: ignore[dict-item]
    assert out.stored == {"provider": "openai"} and out.dropped == 2


def test_a_broken_mapping_keeps_nothing() -> None:
    class Broken(Mapping[str, object]):
        def __getitem__(self, key: str) -> object:
            raise RuntimeError("boom")

        def __iter__(self) -> Iterator[str]:
            return iter(["gen_ai.system"])

        def __len__(self) -> int:
            return 1

    out = filter_attributes(Broken(), SPAN_ATTRIBUTES)
    assert out.kept == {} and [r.reason for r in out.removed] == ["policy_error"]


@pytest.mark.parametrize(
    ("tags", "attempt"),
    [
        (["retry:attempt:2"], 2),
        (["seq:step:1", "retry:attempt:3"], 3),
        (["retry:attempt:0"], None),
        (["retry:attempt:2 please"], None),
        (["my retry:attempt:2"], None),
        ("retry:attempt:2", None),
        ([], None),
        (None, None),
        ([5, "retry:attempt:4"], 4),
    ],
)
def test_langchain_retry_tag(tags: object, attempt: int | None) -> None:
    assert retry_attempt_from_tags(tags) == attempt


_keys = st.one_of(st.sampled_from(list(SPAN_ATTRIBUTES) + CONTENT_KEYS), st.text(max_size=30))
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=80),
    st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=20))
def test_total_and_what_it_keeps_passes_the_policy_again(attrs: dict[str, object]) -> None:
    out = filter_attributes(attrs, SPAN_ATTRIBUTES)
    assert set(out.kept) <= set(SPAN_ATTRIBUTES)
    assert len(out.kept) + len(out.removed) + out.dropped == len(attrs)
    scalars = {key: value for key, value in out.stored.items() if not isinstance(value, list)}
    again, removed = scrub_metadata(scalars)
    assert again == scalars and removed == []
    for key, value in out.stored.items():  # a list of labels: each one passes the policy again
        if isinstance(value, list):
            assert all(scrub_metadata({key: label}) == ({key: label}, []) for label in value)
    for removal in out.removed:
        assert removal.key in SPAN_ATTRIBUTES and removal.reason in REASONS


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (["stop"], ["stop"]),
        ("stop", ["stop"]),  # one label given as a string
        ('["stop", "tool_call"]', ["stop", "tool_call"]),  # Logfire: a JSON array in a string
        (' ["length"] ', ["length"]),
        ("[stop]", ["[stop]"]),  # not JSON: one label
    ],
)
def test_list_valued_attributes_are_stored_as_lists_of_labels(value: object, stored: list[str]) -> None:
    out = filter_attributes({"gen_ai.response.finish_reasons": value}, SPAN_ATTRIBUTES)
    assert out.stored == {"finish_reasons": stored}
    assert out.kept == {"gen_ai.response.finish_reasons": tuple(stored)}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('["stop", 3]', "unsupported_type"),
        ('[{"a": 1}]', "unsupported_type"),
        ('["stop", "call me on +1 415 555 0134"]', "phone"),
        ("[" + ",".join(['"stop"'] * (MAX_LABELS + 1)) + "]", "too_long"),
    ],
)
def test_a_json_array_string_passes_the_same_rules_as_an_array(value: str, reason: str) -> None:
    out = filter_attributes({"gen_ai.response.finish_reasons": value}, SPAN_ATTRIBUTES)
    assert out.stored == {} and [(r.key, r.reason) for r in out.removed] == [("gen_ai.response.finish_reasons", reason)]


def test_openinference_finish_reason_is_a_list_too() -> None:
    out = filter_attributes({"llm.finish_reason": "stop"}, SPAN_ATTRIBUTES)
    assert out.stored == {"finish_reasons": ["stop"]}
