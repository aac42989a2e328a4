"""The execution model's pure helpers: the exception classifier, by instance and by class name alone."""

from __future__ import annotations

import asyncio

import pytest

from agenttracer.model import DEFAULT_EXCEPTION_CODE, failure_code_for_class_name, failure_code_for_exception


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("TimeoutError", "timeout"),
        ("builtins.TimeoutError", "timeout"),
        ("httpx.ReadTimeout", "timeout"),
        ("openai.RateLimitError", "rate_limited"),
        ("pydantic_core._pydantic_core.ValidationError", "schema_invalid"),
        ("json.decoder.JSONDecodeError", "invalid_output"),
        ("ConnectionError", "connection_error"),
        ("pydantic_ai.exceptions.ModelRetry", DEFAULT_EXCEPTION_CODE),
        ("ValueError", DEFAULT_EXCEPTION_CODE),
        ("", DEFAULT_EXCEPTION_CODE),
        ("a.b.", DEFAULT_EXCEPTION_CODE),
    ],
)
def test_class_name_classifier(name: str, code: str) -> None:
    assert failure_code_for_class_name(name) == code


def test_class_name_classifier_agrees_with_the_instance_classifier_on_leaf_classes() -> None:
    for exc in (TimeoutError(), ConnectionError(), PermissionError(), RecursionError(), asyncio.CancelledError()):
        assert failure_code_for_class_name(type(exc).__name__) == failure_code_for_exception(exc)


def test_class_name_classifier_is_total() -> None:
    assert failure_code_for_class_name(None) == DEFAULT_EXCEPTION_CODE  # type: ignore[arg-type]
