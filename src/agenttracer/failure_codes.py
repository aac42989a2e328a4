"""Which failure code an error gets: the one classifier shared by the SDK, the OTLP mapping and the
framework integrations.

An error is known either as an exception object (SDK steps, the LangChain handler) or only by a
name: an OTLP span's ``exception.type`` or ``error.type``, which may be a class name
(``openai.RateLimitError``), Python's ``repr`` of a class (``<class 'openai.RateLimitError'>``,
as opentelemetry-instrumentation-openai-v2 writes it) or an HTTP status (``"429"``). Both ways use
the same table, ``EXCEPTION_FAILURE_CODES``, matched on class *names* so that nothing here imports
a client library.

For an exception object the class hierarchy (MRO) is walked and the first class with a specific
code decides. Names that only say "an HTTP error" (``APIStatusError``, ``HTTPStatusError``,
``ClientError``…) give ``http_error``, which is a fallback: a more specific class further along the
MRO wins over it (Pydantic AI's HTTP errors list ``ModelHTTPError`` before their category), and so
does the HTTP status the exception carries (``status_code``, ``code``, ``status``, or its
``response``'s). A provider's own error code in the exception refines a generic or ``bad_request``
answer (OpenAI's ``context_length_exceeded``; botocore's ``Error.Code``, which names the modelled
exception). docs/failure-handling.md has the tables in prose.

From an exception object, only names, integers and short provider codes are looked at. An error
known only by name may also have a message (an OTLP span's status message or its exception event's
``exception.message``) when the name is generic or missing: ``failure_code_for_message`` then looks
in it for one thing only, a provider's HTTP status or rate-limit wording (``Error code: 429``,
``status_code: 503``, ``Rate limit reached``), by a tight pattern over its first
``MESSAGE_SCAN_CHARS`` characters. It returns a code and nothing of the message; the caller keeps
neither. Standard library only; total (never raises).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_EXCEPTION_CODE = "unhandled_exception"
GENERIC_HTTP_CODE = "http_error"
# The answers that say only "an error" or "an HTTP error": anything more specific wins over them.
FALLBACK_CODES = frozenset({GENERIC_HTTP_CODE, DEFAULT_EXCEPTION_CODE})

# Class names by the code they give. A name appears once; where a name means different things in
# different packages, the packages agree on the code or the name is left out (requests' and
# google.api_core's RetryError: one is about error responses, the other about a deadline).
_CLASSES_BY_CODE: dict[str, tuple[str, ...]] = {
    "timeout": (
        "TimeoutError", "TimeoutException", "ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout",
        "Timeout",  # requests, litellm
        "APITimeoutError",  # openai, anthropic: listed before their base APIConnectionError in the MRO
        "ConnectTimeoutError", "ReadTimeoutError",  # urllib3, botocore
        "RequestTimeoutError", "GatewayTimeoutError", "DeadlineExceededError",  # anthropic 408, 504
        "DeadlineExceeded", "GatewayTimeout",  # google.api_core
        "ModelTimeoutException",  # Amazon Bedrock
        "ModelTimeoutError",  # Agents SDK, langchain_core, Pydantic AI
        "ModelRequestTimeout", "RunTimedOut",  # Pydantic AI (RunTimedOut subclasses RunCancelled)
        "ToolTimeoutError",  # Agents SDK
        "NodeTimeoutError",  # LangGraph
        "OpenAITimeoutError",  # langchain_openai
        "WorkflowTimeoutError",  # LlamaIndex workflows
    ),
    "cancelled": (
        "CancelledError", "KeyboardInterrupt",
        "NodeCancelledError",  # LangGraph
        "MCPToolCancellationError",  # Agents SDK
        "RunCancelled",  # Pydantic AI
        "WorkflowCancelledByUser",  # LlamaIndex workflows
        "Cancelled",  # google.api_core (499)
        "ClientClosedRequestError",  # anthropic (499)
    ),
    "connection_error": (
        "ConnectionError", "ConnectError", "NetworkError", "TransportError", "ProtocolError",  # httpx, urllib3
        "ProxyError", "SSLError", "ChunkedEncodingError",  # requests, urllib3
        "NewConnectionError", "MaxRetryError",  # urllib3 (NewConnectionError subclasses ConnectTimeoutError)
        "APIConnectionError",  # openai, anthropic, litellm
        "ConnectionClosedError",  # botocore
        "ModelConnectionError",  # langchain_core, Pydantic AI
        "WebSocketConnectionClosedError",  # openai
        "OpenAIConnectionError",  # langchain_openai
    ),
    GENERIC_HTTP_CODE: (
        "HTTPStatusError", "HTTPError", "TooManyRedirects",  # httpx, requests, urllib
        "APIStatusError", "APIError",  # openai, anthropic, google-genai, litellm
        "ClientError",  # google-genai and google.api_core (4xx), botocore (any AWS error)
        "GoogleAPICallError", "Redirection",  # google.api_core
        "ModelHTTPError", "ModelAPIError",  # Pydantic AI, langchain_core
        "AI_APICallError",  # Vercel AI SDK (JavaScript), as its spans name it
    ),
    "bad_request": (
        "BadRequestError", "UnprocessableEntityError", "ConflictError",  # openai, anthropic, litellm
        "ContentTooLargeError", "PreconditionFailedError", "RequestHeaderFieldsTooLargeError",  # anthropic
        "BadRequest", "InvalidArgument", "FailedPrecondition", "OutOfRange", "Conflict", "AlreadyExists",
        "Aborted", "LengthRequired", "MethodNotAllowed", "PreconditionFailed",  # google.api_core
        "ParamValidationError", "ValidationException", "ConflictException",  # botocore, AWS services
        "ModelInvalidRequestError",  # langchain_core
        "ModelRequestRejectedError", "ModelFeatureUnsupportedError", "ModelSchemaTooComplexError",  # Pydantic AI
        "InvalidRequestError", "UnsupportedParamsError",  # litellm
        "OpenAIInvalidRequestError",  # langchain_openai
    ),
    "auth_error": (
        "PermissionError", "AuthenticationError", "PermissionDeniedError",  # openai, anthropic, litellm
        "CredentialsError",  # anthropic
        "Unauthenticated", "Unauthorized", "Forbidden", "PermissionDenied",  # google.api_core
        "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "NoAuthTokenError",
        "TokenRetrievalError", "UnauthorizedSSOTokenError",  # botocore
        "AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",  # AWS services
        "AI_LoadAPIKeyError",  # Vercel AI SDK
        "ModelAuthenticationError", "ModelPermissionDeniedError",  # langchain_core, Pydantic AI
        "OpenAIAuthenticationError", "OpenAIPermissionDeniedError",  # langchain_openai
    ),
    "not_found": (
        "FileNotFoundError", "LookupError",  # so KeyError and IndexError too
        "NotFoundError", "NotFound",  # openai, anthropic, litellm; google.api_core
        "ResourceNotFoundException",  # AWS services
        "AI_NoSuchModelError",  # Vercel AI SDK
        "ModelNotFoundError",  # langchain_core, Pydantic AI
        "OpenAIModelNotFoundError",  # langchain_openai
    ),
    "rate_limited": (
        "RateLimitError",  # openai, anthropic (and its spend-limit errors), litellm
        "PaymentRequiredError",  # anthropic 402: billing or spend limit
        "TooManyRequests", "ResourceExhausted",  # google.api_core
        "ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException",
        "ProvisionedThroughputExceededException",  # AWS services
        "ModelRateLimitError",  # langchain_core, Pydantic AI
        "ModelQuotaExceededError", "ConcurrencyLimitExceeded",  # Pydantic AI
        "OpenAIRateLimitError",  # langchain_openai
    ),
    "server_error": (
        "InternalServerError", "ServiceUnavailableError", "OverloadedError",  # openai, anthropic, litellm
        "BadGatewayError",  # litellm
        "ServerError", "ServiceUnavailable", "BadGateway",  # google-genai, google.api_core
        "InternalServerException", "ServiceUnavailableException", "ModelErrorException",
        "ModelNotReadyException", "ModelStreamErrorException",  # Amazon Bedrock
        "ModelServerError", "ModelUnavailableError", "ModelOverloadedError",  # Pydantic AI
    ),
    "schema_invalid": (
        "ValidationError",  # pydantic, botocore
        "APIResponseValidationError",  # openai, anthropic: the response did not match the client's schema
        "JSONSchemaValidationError",  # litellm
        "AI_TypeValidationError",  # Vercel AI SDK
    ),
    "invalid_output": (
        "JSONDecodeError",
        "OutputParserException",  # langchain_core
        "ModelBehaviorError",  # Agents SDK
        "UnexpectedModelBehavior", "OutputTokenLimitExceeded",  # Pydantic AI
        "LengthFinishReasonError",  # openai: the answer was cut off at the token limit
        "AgentParsingError", "AgentToolCallError",  # smolagents
        "AI_NoSuchToolError", "AI_InvalidToolInputError", "AI_JSONParseError",
        "AI_InvalidResponseDataError", "AI_NoOutputGeneratedError",  # Vercel AI SDK
    ),
    "content_filtered": (
        "ContentFilterFinishReasonError",  # openai
        "ContentFilterError",  # Pydantic AI
        "ModelRefusalError",  # Agents SDK, langchain_core
        "ContentPolicyViolationError",  # litellm
        "OpenAIRefusalError",  # langchain_openai
    ),
    "context_overflow": (
        "ContextOverflowError",  # langchain_core
        "ModelContextWindowExceededError",  # Pydantic AI
        "ContextWindowExceededError",  # litellm
        "LLMContextLengthExceededError", "LLMContextLengthExceededException",  # CrewAI, newer and older
        "OpenAIContextOverflowError", "OpenAIAPIContextOverflowError",  # langchain_openai
    ),
    "max_iterations": (
        "RecursionError",
        "GraphRecursionError",  # LangGraph
        "MaxTurnsExceeded",  # Agents SDK
        "AgentMaxStepsError",  # smolagents
    ),
    "usage_limit": (
        "UsageLimitExceeded",  # Pydantic AI
        "BudgetExceededError",  # litellm
    ),
    "guardrail_tripped": (
        "InputGuardrailTripwireTriggered", "OutputGuardrailTripwireTriggered",
        "ToolInputGuardrailTripwireTriggered", "ToolOutputGuardrailTripwireTriggered",  # Agents SDK
    ),
}

# Error codes providers put in the exception (OpenAI's ``code``), which say more than its class.
PROVIDER_ERROR_CODES: Mapping[str, str] = {
    "context_length_exceeded": "context_overflow",
    "content_filter": "content_filtered",
    "content_policy_violation": "content_filtered",
    "rate_limit_exceeded": "rate_limited",
    "insufficient_quota": "rate_limited",
    "invalid_api_key": "auth_error",
    "model_not_found": "not_found",
}


def _by_name(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for code, names in groups.items():
        for name in names:
            if name in table:
                raise ValueError(f"{name} is listed under both {table[name]} and {code}")
            table[name] = code
    return table


# Exception class name -> failure code (checked along the MRO; see the module docstring).
EXCEPTION_FAILURE_CODES: Mapping[str, str] = _by_name(_CLASSES_BY_CODE)

# Codes a class can give that a provider's own error code may refine.
_REFINABLE = frozenset({GENERIC_HTTP_CODE, "bad_request", DEFAULT_EXCEPTION_CODE})
_CLASS_REPR = re.compile(r"<class '([^'<>]{1,200})'>")
_MAX_NAME = 256

# How much of an error message is scanned: providers put the status first ("Error code: 429 - {...}").
MESSAGE_SCAN_CHARS = 1024
# A provider's 4xx/5xx status as clients word it: openai/anthropic "Error code: 429", Pydantic AI
# "status_code: 429", "status code 429", "statusCode: 429", "HTTP 429", "HTTP/1.1 429". A number
# without those words is never enough: "order 429 not found" is data.
_STATUS_WORDING = re.compile(
    r"(?:\berror code|\bstatus[ _]?code|\bhttp(?:/\d(?:\.\d)?)?(?: status)?)[ :=]{0,3}([45]\d\d)\b",
    re.IGNORECASE)
# Rate-limit wording of providers and gateways: "Rate limit reached/exceeded", "rate limited",
# "rate_limit_exceeded", "rate_limit_error", "Too Many Requests".
_RATE_LIMIT_WORDING = re.compile(
    r"\brate[ _-]?limit(?:ed\b|[ _-]?(?:reached|exceeded|error)\b)|\btoo many requests\b", re.IGNORECASE)


def failure_code_for_status(status: int) -> str:
    """The failure code an HTTP status stands for: 408/504 timeout, 429 and 402 rate_limited,
    401/403 auth_error, 404/410 not_found, 499 cancelled, other 4xx bad_request, other 5xx
    server_error; anything else http_error."""
    if status in (408, 504):
        return "timeout"
    if status in (429, 402):
        return "rate_limited"
    if status in (401, 403):
        return "auth_error"
    if status in (404, 410):
        return "not_found"
    if status == 499:
        return "cancelled"
    if 400 <= status < 500:
        return "bad_request"
    if 500 <= status < 600:
        return "server_error"
    return GENERIC_HTTP_CODE


def failure_code_for_exception(exc: BaseException) -> str:
    """The failure code for an exception object: its MRO, then the HTTP status or provider error
    code it carries (see the module docstring). Never raises."""
    try:
        code = _code_along_mro(type(exc))
        if code in _REFINABLE:
            refined = _provider_code(exc)
            if refined is not None:
                return refined
        if code not in FALLBACK_CODES:
            return code
        status = _http_status(exc)
        if status is not None:
            return failure_code_for_status(status)
        return code
    except Exception:
        return DEFAULT_EXCEPTION_CODE


def failure_code_for_class_name(name: str | None, status: int | None = None) -> str:
    """The failure code for an error known only by name: a class name, dotted or not
    (``httpx.ReadTimeout``), its repr (``<class 'openai.RateLimitError'>``) or an HTTP status
    (``"503"``). The name after the last dot is looked up, since the hierarchy is not known; a
    generic or unknown name falls back to ``status`` (the span's HTTP status) when one is given."""
    if not isinstance(name, str) or len(name) > _MAX_NAME:
        return _status_or(status, DEFAULT_EXCEPTION_CODE)
    name = name.strip()
    match = _CLASS_REPR.fullmatch(name)
    if match is not None:
        name = match.group(1)
    if name.isdigit() and len(name) == 3 and name.isascii():
        return failure_code_for_status(int(name))
    code = EXCEPTION_FAILURE_CODES.get(name.rpartition(".")[2], DEFAULT_EXCEPTION_CODE)
    if code in FALLBACK_CODES:
        return _status_or(status, code)
    return code


def failure_code_for_message(message: object) -> str | None:
    """The code a provider's status wording or rate-limit wording in an error message stands for
    (see ``_STATUS_WORDING``), else None. Only for errors whose name said nothing specific; the
    message is matched, never kept."""
    if not isinstance(message, str) or not message:
        return None
    head = message[:MESSAGE_SCAN_CHARS]
    match = _STATUS_WORDING.search(head)
    if match is not None:
        return failure_code_for_status(int(match.group(1)))
    return "rate_limited" if _RATE_LIMIT_WORDING.search(head) else None


def _status_or(status: int | None, code: str) -> str:
    if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
        return failure_code_for_status(status)
    return code


def _code_along_mro(cls: type) -> str:
    """The first specific code along the MRO; else ``http_error`` if a generic name was met."""
    generic = False
    for klass in cls.__mro__:
        code = EXCEPTION_FAILURE_CODES.get(klass.__name__)
        if code == GENERIC_HTTP_CODE:
            generic = True
        elif code is not None:
            return code
    return GENERIC_HTTP_CODE if generic else DEFAULT_EXCEPTION_CODE


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, by the attribute names client libraries use."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attribute in ("status_code", "status", "code"):
            value = getattr(holder, attribute, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    meta = _botocore_response(exc).get("ResponseMetadata")
    value = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _provider_code(exc: BaseException) -> str | None:
    """The code a provider's own error code in the exception stands for, if it is a known one."""
    value = getattr(exc, "code", None)
    if isinstance(value, str) and value in PROVIDER_ERROR_CODES:
        return PROVIDER_ERROR_CODES[value]
    error = _botocore_response(exc).get("Error")
    name = error.get("Code") if isinstance(error, dict) else None
    if isinstance(name, str):
        code = EXCEPTION_FAILURE_CODES.get(name)
        if code is not None and code not in _REFINABLE:
            return code
    return None


def _botocore_response(exc: BaseException) -> dict[str, Any]:
    response = getattr(exc, "response", None)
    return response if isinstance(response, dict) else {}
