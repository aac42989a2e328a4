"""Schemathesis against both live APIs (ingest and query) on SQLite and PostgreSQL.

Each operation of each API's own OpenAPI document gets a bounded number of generated requests, valid
and invalid ones (``EXAMPLES`` per operation and mode: the file runs in ~1.5 minutes on a 2-core box).
Every response must be no 5xx and must match the schema the API declares: status code, content type,
headers and body. The examples are derandomized, so CI sends the same requests every time and a
failure reproduces with the curl line in its report. Real uvicorn servers on loopback serve a
database seeded with a few runs, so the query side answers with data, not only 404s.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from tests.support.rundata import ingest_runs, sample_runs

pytestmark = [pytest.mark.slow]  # ~20 s per API and database; always part of `make test`

EXAMPLES = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def _operations(base_url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    ops = [result.ok() for result in schema.get_all_operations()]
    assert ops, "the API declares no operations"
    return ops


def _fuzz(base_url: str, operation: Any, mode: GenerationMode) -> int:
    calls = 0

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples on every run: a failure here is reproducible
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the failing request as found
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

    run()
    return calls


@pytest.fixture
def seeded(live_ingest: str, live_query: str) -> tuple[str, str]:
    ingest_runs(live_ingest, sample_runs())
    return live_ingest, live_query


@pytest.mark.parametrize("api", ["ingest", "query"])
def test_every_operation_answers_without_5xx_and_as_its_schema_says(seeded: tuple[str, str], api: str) -> None:
    base_url = seeded[0] if api == "ingest" else seeded[1]
    fuzzed, failures = [], []
    for operation in _operations(base_url):
        for mode in MODES:
            # Every operation and mode runs, so one report lists every kind of failure at once.
            try:
                calls = _fuzz(base_url, operation, mode)
            except hypothesis.errors.Unsatisfiable:
                # An operation without parameters or body has no invalid request to make.
                assert mode is GenerationMode.NEGATIVE and not list(operation.iter_parameters()), operation.label
                continue
            except (Exception, FailureGroup) as exc:  # summarised below
                failures.append(f"{operation.label} [{mode.value}]: {_summary(exc)}")
                continue
            assert calls > 0, f"{operation.label} {mode.value}: no request was generated"
            fuzzed.append(operation.label)
    assert not failures, "\n\n".join(failures)
    assert len(set(fuzzed)) >= 2, fuzzed  # the API's operations and /health, at least


def _summary(exc: BaseException) -> str:
    # The first lines of each failure and the curl line that reproduces it; the full text is long.
    text = str(exc)
    for sub in getattr(exc, "exceptions", ()):
        text += "\n" + str(sub)
    lines = [line.strip(" |") for line in text.splitlines() if line.strip(" |")]
    keep = [line for line in lines if line.startswith(("curl", "- ", "[", "Response", "\"")) or "violates" in line]
    return "\n  ".join(dict.fromkeys(keep[:12] or lines[:6]))
