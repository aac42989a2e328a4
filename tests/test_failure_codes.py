"""The failure-code classifier, tried on the real exception classes of the clients and frameworks
agents use, by instance (SDK, native integrations) and by name alone (OTLP ``error.type`` and
``exception.type``)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from types import SimpleNamespace

import anthropic
import botocore.exceptions
import botocore.session
import httpx
import openai
import pytest
import requests
import urllib3.exceptions
from agents import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    ToolTimeoutError,
)
from google.api_core import exceptions as google_api
from google.genai import errors as genai_errors
from langchain_core.exceptions import ContextOverflowError, ModelRateLimitError, OutputParserException
from langgraph.errors import GraphRecursionError
from pydantic_ai import exceptions as pai

from agenttracer.failure_codes import (
    DEFAULT_EXCEPTION_CODE,
    EXCEPTION_FAILURE_CODES,
    PROVIDER_ERROR_CODES,
    failure_code_for_class_name,
    failure_code_for_exception,
    failure_code_for_message,
    failure_code_for_status,
)
from agenttracer.model import FAILURE_CODES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "failure-handling.md"
REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat")


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=REQUEST)


def _openai(cls: type[openai.APIStatusError], status: int, code: str | None = None) -> openai.APIStatusError:
    return cls("refused", response=_response(status), body={"code": code} if code else None)


def _anthropic(cls: type[anthropic.APIStatusError], status: int) -> anthropic.APIStatusError:
    return cls("refused", response=_response(status), body=None)


def _requests_http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError("bad status", response=response)


def _aws_client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    body = {"Error": {"Code": code, "Message": "refused"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(body, "InvokeModel")  # type: ignore[arg-type]


def _bedrock_exceptions() -> object:
    """The modelled exceptions of a real Bedrock runtime client (made offline: no call is sent)."""
    client = botocore.session.get_session().create_client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    return client.exceptions


def _bedrock(name: str, status: int) -> Exception:
    cls = getattr(_bedrock_exceptions(), name)
    body = {"Error": {"Code": name, "Message": "refused"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return cls(body, "InvokeModel")  # type: ignore[no-any-return]


GUARDRAIL_RESULT = SimpleNamespace(guardrail=object())

INSTANCES: list[tuple[str, BaseException, str]] = [
    # openai: the MRO walk must pick the subclass before its base (APITimeoutError is an APIConnectionError)
    ("openai.RateLimitError", _openai(openai.RateLimitError, 429), "rate_limited"),
    ("openai.RateLimitError insufficient_quota", _openai(openai.RateLimitError, 429, "insufficient_quota"),
     "rate_limited"),
    ("openai.APITimeoutError", openai.APITimeoutError(request=REQUEST), "timeout"),
    ("openai.APIConnectionError", openai.APIConnectionError(request=REQUEST), "connection_error"),
    ("openai.AuthenticationError", _openai(openai.AuthenticationError, 401), "auth_error"),
    ("openai.PermissionDeniedError", _openai(openai.PermissionDeniedError, 403), "auth_error"),
    ("openai.NotFoundError", _openai(openai.NotFoundError, 404), "not_found"),
    ("openai.BadRequestError", _openai(openai.BadRequestError, 400), "bad_request"),
    ("openai.BadRequestError context_length_exceeded",
     _openai(openai.BadRequestError, 400, "context_length_exceeded"), "context_overflow"),
    ("openai.BadRequestError content_filter", _openai(openai.BadRequestError, 400, "content_filter"),
     "content_filtered"),
    ("openai.UnprocessableEntityError", _openai(openai.UnprocessableEntityError, 422), "bad_request"),
    ("openai.ConflictError", _openai(openai.ConflictError, 409), "bad_request"),
    ("openai.InternalServerError", _openai(openai.InternalServerError, 500), "server_error"),
    ("openai.APIStatusError 418", _openai(openai.APIStatusError, 418), "bad_request"),
    ("openai.APIStatusError 503", _openai(openai.APIStatusError, 503), "server_error"),
    ("openai.APIStatusError 504", _openai(openai.APIStatusError, 504), "timeout"),
    ("openai.APIResponseValidationError",
     openai.APIResponseValidationError(response=_response(200), body=None), "schema_invalid"),
    # anthropic
    ("anthropic.RateLimitError", _anthropic(anthropic.RateLimitError, 429), "rate_limited"),
    ("anthropic.OverloadedError", _anthropic(anthropic.OverloadedError, 529), "server_error"),
    ("anthropic.APITimeoutError", anthropic.APITimeoutError(request=REQUEST), "timeout"),
    ("anthropic.AuthenticationError", _anthropic(anthropic.AuthenticationError, 401), "auth_error"),
    ("anthropic.BadRequestError", _anthropic(anthropic.BadRequestError, 400), "bad_request"),
    ("anthropic.NotFoundError", _anthropic(anthropic.NotFoundError, 404), "not_found"),
    ("anthropic.InternalServerError", _anthropic(anthropic.InternalServerError, 500), "server_error"),
    ("anthropic.DeadlineExceededError", _anthropic(anthropic.DeadlineExceededError, 504), "timeout"),
    # httpx
    ("httpx.ReadTimeout", httpx.ReadTimeout("slow", request=REQUEST), "timeout"),
    ("httpx.ConnectTimeout", httpx.ConnectTimeout("slow", request=REQUEST), "timeout"),
    ("httpx.ConnectError", httpx.ConnectError("refused", request=REQUEST), "connection_error"),
    ("httpx.RemoteProtocolError", httpx.RemoteProtocolError("reset", request=REQUEST), "connection_error"),
    ("httpx.HTTPStatusError 429", httpx.HTTPStatusError("x", request=REQUEST, response=_response(429)),
     "rate_limited"),
    ("httpx.HTTPStatusError 502", httpx.HTTPStatusError("x", request=REQUEST, response=_response(502)),
     "server_error"),
    ("httpx.HTTPStatusError 404", httpx.HTTPStatusError("x", request=REQUEST, response=_response(404)),
     "not_found"),
    # requests and urllib3
    ("requests.ReadTimeout", requests.ReadTimeout(), "timeout"),
    ("requests.ConnectTimeout", requests.ConnectTimeout(), "timeout"),
    ("requests.ConnectionError", requests.ConnectionError(), "connection_error"),
    ("requests.HTTPError 401", _requests_http_error(401), "auth_error"),
    ("requests.HTTPError 503", _requests_http_error(503), "server_error"),
    ("requests.HTTPError without a response", requests.HTTPError("x"), "http_error"),
    ("urllib3.NewConnectionError", urllib3.exceptions.NewConnectionError(None, "refused"), "connection_error"),
    # botocore: the generic ClientError is read by its Error.Code, then by its HTTP status
    ("botocore ThrottlingException code", _aws_client_error("ThrottlingException", 400), "rate_limited"),
    ("botocore unknown code, 503", _aws_client_error("SomethingNew", 503), "server_error"),
    ("botocore unknown code, 403", _aws_client_error("SomethingNew", 403), "auth_error"),
    ("bedrock ThrottlingException", _bedrock("ThrottlingException", 429), "rate_limited"),
    ("bedrock ValidationException", _bedrock("ValidationException", 400), "bad_request"),
    ("bedrock AccessDeniedException", _bedrock("AccessDeniedException", 403), "auth_error"),
    ("bedrock ModelTimeoutException", _bedrock("ModelTimeoutException", 408), "timeout"),
    ("bedrock ServiceUnavailableException", _bedrock("ServiceUnavailableException", 503), "server_error"),
    ("bedrock ResourceNotFoundException", _bedrock("ResourceNotFoundException", 404), "not_found"),
    ("botocore.ReadTimeoutError", botocore.exceptions.ReadTimeoutError(endpoint_url="https://x"), "timeout"),
    ("botocore.ConnectTimeoutError", botocore.exceptions.ConnectTimeoutError(endpoint_url="https://x"), "timeout"),
    ("botocore.EndpointConnectionError", botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"),
     "connection_error"),
    ("botocore.NoCredentialsError", botocore.exceptions.NoCredentialsError(), "auth_error"),
    # google.api_core and google-genai
    ("google.api_core.ResourceExhausted", google_api.ResourceExhausted("quota"), "rate_limited"),
    ("google.api_core.DeadlineExceeded", google_api.DeadlineExceeded("slow"), "timeout"),
    ("google.api_core.ServiceUnavailable", google_api.ServiceUnavailable("down"), "server_error"),
    ("google.api_core.PermissionDenied", google_api.PermissionDenied("no"), "auth_error"),
    ("google.api_core.InvalidArgument", google_api.InvalidArgument("bad"), "bad_request"),
    ("google.api_core.NotFound", google_api.NotFound("gone"), "not_found"),
    ("google.api_core.Cancelled", google_api.Cancelled("stop"), "cancelled"),
    ("google.api_core from_http_status(418)", google_api.from_http_status(418, "x"), "bad_request"),
    ("google.genai ClientError 429", genai_errors.ClientError(429, {"error": {"code": 429}}), "rate_limited"),
    ("google.genai ClientError 400", genai_errors.ClientError(400, {"error": {"code": 400}}), "bad_request"),
    ("google.genai ServerError 503", genai_errors.ServerError(503, {"error": {"code": 503}}), "server_error"),
    # frameworks
    ("langgraph.GraphRecursionError", GraphRecursionError("limit"), "max_iterations"),
    ("agents.MaxTurnsExceeded", MaxTurnsExceeded("turns"), "max_iterations"),
    ("agents.ModelBehaviorError", ModelBehaviorError("bad json"), "invalid_output"),
    ("agents.ToolTimeoutError", ToolTimeoutError("lookup", 1.0), "timeout"),
    ("agents.InputGuardrailTripwireTriggered", InputGuardrailTripwireTriggered(GUARDRAIL_RESULT),  # type: ignore[arg-type]
     "guardrail_tripped"),
    ("agents.OutputGuardrailTripwireTriggered", OutputGuardrailTripwireTriggered(GUARDRAIL_RESULT),  # type: ignore[arg-type]
     "guardrail_tripped"),
    ("pydantic_ai.UsageLimitExceeded", pai.UsageLimitExceeded("tokens"), "usage_limit"),
    ("pydantic_ai.UnexpectedModelBehavior", pai.UnexpectedModelBehavior("odd"), "invalid_output"),
    ("pydantic_ai.ModelHTTPError 429", pai.ModelHTTPError(429, "m"), "rate_limited"),
    ("pydantic_ai.ModelHTTPError 500", pai.ModelHTTPError(500, "m"), "server_error"),
    ("pydantic_ai.RunTimedOut (a RunCancelled)", pai.RunTimedOut("slow"), "timeout"),
    ("langchain_core.OutputParserException", OutputParserException("x"), "invalid_output"),
    ("langchain_core.ContextOverflowError", ContextOverflowError("x"), "context_overflow"),
    ("langchain_core.ModelRateLimitError", ModelRateLimitError("x"), "rate_limited"),
    # the standard library
    ("TimeoutError", TimeoutError(), "timeout"),
    ("asyncio.CancelledError", asyncio.CancelledError(), "cancelled"),
    ("ConnectionRefusedError", ConnectionRefusedError(), "connection_error"),
    ("KeyError", KeyError("k"), "not_found"),
    ("json.JSONDecodeError", json.JSONDecodeError("x", "doc", 0), "invalid_output"),
    ("RecursionError", RecursionError(), "max_iterations"),
    ("ValueError", ValueError("x"), DEFAULT_EXCEPTION_CODE),
]


@pytest.mark.parametrize(("label", "exc", "code"), INSTANCES, ids=[label for label, _, _ in INSTANCES])
def test_real_exceptions_get_their_code(label: str, exc: BaseException, code: str) -> None:
    assert failure_code_for_exception(exc) == code


def test_pydantic_ai_http_errors_keep_their_category_over_the_generic_http_class() -> None:
    """Pydantic AI lists ModelHTTPError before the category (context window, rate limit) in the MRO:
    the generic name must not win."""
    exc = pai.ModelHTTPError(400, "m", body={"error": {"code": "context_length_exceeded", "message": "x"}})
    specific = [cls.__name__ for cls in type(exc).__mro__ if cls.__name__ == "ModelContextWindowExceededError"]
    if specific:
        assert failure_code_for_exception(exc) == "context_overflow"
    else:  # this version does not categorise the error: the status decides
        assert failure_code_for_exception(exc) == "bad_request"


class _Hostile(Exception):
    """An exception whose attributes raise when read."""

    @property
    def status_code(self) -> int:
        raise RuntimeError("boom")


def test_the_classifier_never_raises() -> None:
    assert failure_code_for_exception(_Hostile()) == DEFAULT_EXCEPTION_CODE


@pytest.mark.parametrize(
    ("name", "code"),
    [
        # what OTLP instrumentations write in error.type / exception.type
        ("<class 'openai.RateLimitError'>", "rate_limited"),
        ("<class 'openai.APITimeoutError'>", "timeout"),
        ("<class 'openai.BadRequestError'>", "bad_request"),
        ("<class 'httpx.ConnectError'>", "connection_error"),
        ("openai.InternalServerError", "server_error"),
        ("anthropic.OverloadedError", "server_error"),
        ("builtins.TimeoutError", "timeout"),
        ("TimeoutError", "timeout"),
        ("httpx.ReadTimeout", "timeout"),
        ("pydantic_core._pydantic_core.ValidationError", "schema_invalid"),
        ("json.decoder.JSONDecodeError", "invalid_output"),
        ("langgraph.errors.GraphRecursionError", "max_iterations"),
        ("agents.exceptions.MaxTurnsExceeded", "max_iterations"),
        ("agents.exceptions.OutputGuardrailTripwireTriggered", "guardrail_tripped"),
        ("pydantic_ai.exceptions.UsageLimitExceeded", "usage_limit"),
        # not installed in the test environment (heavy dependency trees): their documented class names
        ("smolagents.utils.AgentMaxStepsError", "max_iterations"),
        ("smolagents.utils.AgentParsingError", "invalid_output"),
        ("crewai.utilities.exceptions.context_window_exceeding_exception.LLMContextLengthExceededError",
         "context_overflow"),
        ("workflows.errors.WorkflowTimeoutError", "timeout"),
        ("litellm.exceptions.ContextWindowExceededError", "context_overflow"),
        ("litellm.exceptions.ContentPolicyViolationError", "content_filtered"),
        ("litellm.exceptions.BudgetExceededError", "usage_limit"),
        ("langchain_openai.chat_models.base.OpenAIRateLimitError", "rate_limited"),  # as OpenInference writes it
        ("langchain_openai.chat_models.base.OpenAIContextOverflowError", "context_overflow"),
        # HTTP statuses as error.type
        ("429", "rate_limited"),
        ("401", "auth_error"),
        ("403", "auth_error"),
        ("404", "not_found"),
        ("408", "timeout"),
        ("504", "timeout"),
        ("400", "bad_request"),
        ("422", "bad_request"),
        ("500", "server_error"),
        ("503", "server_error"),
        ("302", "http_error"),
        # unknown or malformed
        ("pydantic_ai.exceptions.ModelRetry", DEFAULT_EXCEPTION_CODE),
        ("ValueError", DEFAULT_EXCEPTION_CODE),
        ("_OTHER", DEFAULT_EXCEPTION_CODE),
        ("", DEFAULT_EXCEPTION_CODE),
        ("a.b.", DEFAULT_EXCEPTION_CODE),
        ("<class 'openai.RateLimitError'", DEFAULT_EXCEPTION_CODE),
        ("4291", DEFAULT_EXCEPTION_CODE),
        ("٤٢٩", DEFAULT_EXCEPTION_CODE),  # Arabic-Indic digits are not an HTTP status
        ("x" * 5000, DEFAULT_EXCEPTION_CODE),
    ],
)
def test_class_name_classifier(name: str, code: str) -> None:
    assert failure_code_for_class_name(name) == code


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("openai.APIStatusError", 429, "rate_limited"),
        ("httpx.HTTPStatusError", 503, "server_error"),
        ("SomeUnknownError", 401, "auth_error"),
        ("openai.RateLimitError", 500, "rate_limited"),  # a specific name wins over the status
        ("httpx.HTTPStatusError", None, "http_error"),
        ("httpx.HTTPStatusError", 1000, "http_error"),
        (None, 404, "not_found"),
    ],
)
def test_class_name_falls_back_to_the_span_status(name: str | None, status: int | None, code: str) -> None:
    assert failure_code_for_class_name(name, status) == code


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "bad_request"), (401, "auth_error"), (402, "rate_limited"), (403, "auth_error"), (404, "not_found"),
     (408, "timeout"), (409, "bad_request"), (410, "not_found"), (413, "bad_request"), (422, "bad_request"),
     (429, "rate_limited"), (499, "cancelled"), (500, "server_error"), (502, "server_error"),
     (503, "server_error"), (504, "timeout"), (529, "server_error"), (200, "http_error"), (302, "http_error")],
)
def test_http_status_codes(status: int, code: str) -> None:
    assert failure_code_for_status(status) == code


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Error code: 429 - {'error': {'message': 'Rate limit reached for requests'}}", "rate_limited"),  # openai
        ("Error getting response: {'error': 'Error code: 429 - slow down'}", "rate_limited"),  # Agents SDK span
        ("status_code: 503, model_name: gpt-4o, body: {}", "server_error"),  # Pydantic AI
        ("upstream answered HTTP 401", "auth_error"),
        ("HTTP/1.1 504 Gateway Timeout", "timeout"),
        ("statusCode: 404", "not_found"),
        ("Rate limit reached for requests", "rate_limited"),  # the provider's wording, no status
        ("you have been rate-limited, retry later", "rate_limited"),
        ("rate_limit_error", "rate_limited"),  # anthropic's error type
        ("429 Client Error: Too Many Requests for url", "rate_limited"),  # requests
        # a number, or the words, as data: no provider's wording
        ("order 429 not found", None),
        ("lookup failed for customer 429", None),
        ("what is my rate limit?", None),
        ("Error code: 200", None),
        ("error code 4290", None),
        ("", None),
        (None, None),
        ("x" * 5000 + " Error code: 429", None),  # only the message's head is scanned
    ],
)
def test_message_classifier_reads_only_a_providers_status_or_rate_limit_wording(message: str | None,
                                                                               code: str | None) -> None:
    assert failure_code_for_message(message) == code


def test_class_name_classifier_agrees_with_the_instance_classifier_on_leaf_classes() -> None:
    for exc in (TimeoutError(), ConnectionError(), PermissionError(), RecursionError(), asyncio.CancelledError(),
                MaxTurnsExceeded("x"), pai.UsageLimitExceeded("x"), google_api.ResourceExhausted("x")):
        assert failure_code_for_class_name(type(exc).__name__) == failure_code_for_exception(exc)


def test_the_class_name_classifier_is_total() -> None:
    assert failure_code_for_class_name(None) == DEFAULT_EXCEPTION_CODE
    assert failure_code_for_class_name(429) == DEFAULT_EXCEPTION_CODE  # type: ignore[arg-type]


def test_every_code_the_classifier_gives_is_documented() -> None:
    given = set(EXCEPTION_FAILURE_CODES.values()) | set(PROVIDER_ERROR_CODES.values())
    given |= {failure_code_for_status(status) for status in range(100, 600)}
    assert given <= set(FAILURE_CODES)


def test_docs_list_every_code_and_every_class_name() -> None:
    text = DOCS.read_text()
    in_backticks = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", text))
    missing_codes = sorted(set(FAILURE_CODES) - in_backticks)
    missing_names = sorted(set(EXCEPTION_FAILURE_CODES) - in_backticks)
    missing_provider = sorted(set(PROVIDER_ERROR_CODES) - in_backticks)
    assert (missing_codes, missing_names, missing_provider) == ([], [], [])
