"""Logfire (``send_to_logfire=False``) instrumenting a Pydantic AI agent, exporting OTLP through the
standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variable."""

from __future__ import annotations

import os

from tests.conformance.record.context import ENVIRONMENT, Context
from tests.conformance.record.frameworks.pydantic_ai import make_agent
from tests.conformance.record.scenarios import prompt


def record(ctx: Context) -> None:
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{ctx.receiver_url}/v1/traces"
    import logfire

    logfire.configure(send_to_logfire=False, service_name="logfire-agent", service_version=ctx.version,
                      environment=ENVIRONMENT, console=False, metrics=False)
    logfire.instrument_pydantic_ai()
    ctx.closers.append(logfire.shutdown)
    make_agent(ctx, None).run_sync(prompt())
