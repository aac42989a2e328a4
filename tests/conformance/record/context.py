"""What a framework module gets to record one scenario: where to send spans or events, where the fake
model listens, and a TracerProvider exporting OTLP/protobuf to the receiver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENVIRONMENT = "conformance"
VERSION_VARIABLE = "AGENTTRACER_CONFORMANCE_VERSION"  # lets the live tests tell their runs apart
# The exporters' deadline per batch, retries included. The stock 10 s is shorter than the Ingest API may
# keep a batch waiting for a write slot on a busy box (then it answers 503 and the exporter gives up).
EXPORT_TIMEOUT_S = 60.0


class ExportFailed(RuntimeError):
    """A recording's exporter dropped spans: the run it records is incomplete."""


@dataclass
class Context:
    scenario: str
    receiver_url: str  # base URL: OTLP goes to /v1/traces, the SDK's batches to /v1/ingest
    model_url: str  # an OpenAI-compatible base URL ending in /v1, private to this run
    version: str = "1.0.0"  # the agent version every recorded run reports
    closers: list[Any] = field(default_factory=list)  # called when the run is over: flush exporters
    failed_exports: list[int] = field(default_factory=list)  # span counts of the batches an exporter dropped

    def tracer_provider(self, service: str) -> Any:
        """A TracerProvider with the stock protobuf OTLP exporter behind a BatchSpanProcessor, its resource
        naming ``service``, the run's version and the environment."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": service, "service.version": self.version,
                                    "deployment.environment.name": ENVIRONMENT})
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=f"{self.receiver_url}/v1/traces", timeout=EXPORT_TIMEOUT_S)
        provider.add_span_processor(BatchSpanProcessor(_counted(exporter, self.failed_exports)))
        self.closers.append(provider.shutdown)
        return provider

    def close(self) -> None:
        """Flushes every exporter; raises ``ExportFailed`` if one dropped spans (the stock processor only logs
        it), so that a recording or a live run never passes off part of a run as the whole."""
        for close in reversed(self.closers):
            close()
        if self.failed_exports:
            raise ExportFailed(f"{len(self.failed_exports)} span batches ({sum(self.failed_exports)} spans) were "
                               "not accepted by the receiver; see the exporter's log above")

    def openai_env(self) -> dict[str, str]:
        return {"OPENAI_API_KEY": "sk-fake-offline", "OPENAI_BASE_URL": self.model_url}


def _counted(exporter: Any, failed: list[int]) -> Any:
    """``exporter``, noting in ``failed`` the size of every batch it could not deliver."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counted(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            result: SpanExportResult = exporter.export(spans)
            if result is not SpanExportResult.SUCCESS:
                failed.append(len(spans))
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return bool(exporter.force_flush(timeout_millis))

    return Counted()
