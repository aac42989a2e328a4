"""The Query API's shared parameters, validated by model.py's input rules before any SQL sees them.

``run_filters`` (the filters of /v1/runs, /v1/stats and /v1/compare), the since/until window,
``NoControlChars`` for every text parameter, and ``invalid`` for a 422 naming one parameter and its
rule (the rule's name as ``type``). The rejected value is never echoed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from agenttracer.model import (
    CONTROL_CHARACTERS_RULE,
    CUSTOM_CODE_PATTERN,
    MAX_CODE_LEN,
    MAX_ENVIRONMENT_LEN,
    MAX_ID_LEN,
    MAX_NAME_LEN,
    MAX_VERSION_LEN,
    RULE_CONTROL_CHARACTERS,
    RULE_TIME_RANGE,
    TIMESTAMP_FORMAT_RULE,
    FailureType,
    RunStatus,
    has_bad_chars,
    looks_like_iso_timestamp,
    time_rule_text,
    to_utc_in_range,
)
from agenttracer.server.query.scope import read_projects
from agenttracer.store.filters import RunFilters

TIME_RULE_DOC = (
    "From 1970-01-01T00:00:00Z to 24 h after the server's clock, else 422 (rule time_range)."
)

def _no_control_chars(value: str | None) -> str | None:
    if value is not None and has_bad_chars(value):
        raise PydanticCustomError(RULE_CONTROL_CHARACTERS, CONTROL_CHARACTERS_RULE)
    return value


# Every text parameter refuses control characters (NUL included) with a 422 naming it, on both
# databases, before any SQL sees it (model.py's text rule).
NoControlChars = AfterValidator(_no_control_chars)

def _iso_text_only(value: object) -> object:
    # Numbers are not timestamps (model.py's rule on both APIs), though the datetime parser would read one.
    if isinstance(value, str) and not looks_like_iso_timestamp(value):
        raise PydanticCustomError("timestamp_format", TIMESTAMP_FORMAT_RULE)
    return value


# The time window every read endpoint accepts, declared once so /v1/runs, /v1/stats and /v1/compare agree.
SinceParam = Annotated[
    datetime | None,
    BeforeValidator(_iso_text_only),
    Query(description="Runs started at or after this time (ISO 8601; UTC if no offset). " + TIME_RULE_DOC),
]
UntilParam = Annotated[
    datetime | None,
    BeforeValidator(_iso_text_only),
    Query(description="Runs started before this time (ISO 8601; UTC if no offset). " + TIME_RULE_DOC),
]


def invalid(param: str, rule: str, where: str = "query", code: str = "value_error") -> RequestValidationError:
    """A 422 naming one parameter and the rule it broke (never echoing the rejected value)."""
    return RequestValidationError([{"loc": (where, param), "msg": rule, "type": code}])


def time_window(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """since/until in UTC, each within model.py's timestamp rule, since before until; else a 422."""
    now = datetime.now(timezone.utc)
    out: list[datetime | None] = []
    for name, value in (("since", since), ("until", until)):
        if value is None:
            out.append(None)
            continue
        utc = to_utc_in_range(value, now)
        if utc is None:
            raise invalid(name, time_rule_text(), code=RULE_TIME_RANGE)
        out.append(utc)
    lo, hi = out
    if lo is not None and hi is not None and lo >= hi:
        raise invalid("until", "must be later than since", code="order")
    return lo, hi


def run_filters(
    agent_id: Annotated[str | None, Query(max_length=MAX_ID_LEN, description="Exact agent id."), NoControlChars] = None,
    agent_version: Annotated[
        str | None, Query(max_length=MAX_VERSION_LEN, description="Exact version."),
        NoControlChars,
    ] = None,
    environment: Annotated[
        str | None, Query(max_length=MAX_ENVIRONMENT_LEN, description="Exact environment."), NoControlChars
    ] = None,
    status: Annotated[RunStatus | None, Query(description="Run status.")] = None,
    failure_type: Annotated[FailureType | None, Query(description="Failure type of the run.")] = None,
    failure_code: Annotated[
        str | None, Query(max_length=MAX_CODE_LEN, description="Failure code, e.g. timeout."), NoControlChars
    ] = None,
    step_name: Annotated[
        str | None, Query(max_length=MAX_NAME_LEN, description="Runs with at least one step of this name."),
        NoControlChars,
    ] = None,
    since: SinceParam = None,
    until: UntilParam = None,
    projects: tuple[str, ...] = Depends(read_projects),
) -> RunFilters:
    """The run filters shared by /v1/runs, /v1/stats and /v1/compare, validated, inside the projects the
    caller reads (``scope.py``)."""
    if failure_code is not None and not CUSTOM_CODE_PATTERN.fullmatch(failure_code):
        raise invalid("failure_code", "must match ^[a-z][a-z0-9_]{0,63}$ (e.g. timeout, rate_limited)")
    since, until = time_window(since, until)
    return RunFilters(
        agent_id=agent_id,
        agent_version=agent_version,
        environment=environment,
        status=status.value if status is not None else None,
        failure_type=failure_type.value if failure_type is not None else None,
        failure_code=failure_code,
        step_name=step_name,
        since=since,
        until=until,
        projects=projects,
    )

