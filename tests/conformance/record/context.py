"""What a framework module gets to record one scenario: where to send spans or events, where the fake
model listens, and a TracerProvider exporting OTLP/protobuf to the receiver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENVIRONMENT = "conformance"
VERSION_VARIABLE = "AGENTTRACER_CONFORMANCE_VERSION"  # lets the live tests tell their runs apart


@dataclass
class Context:
    scenario: str
    receiver_url: str  # base URL: OTLP goes to /v1/traces, the SDK's batches to /v1/ingest
    model_url: str  # an OpenAI-compatible base URL ending in /v1, private to this run
    version: str = "1.0.0"  # the agent version every recorded run reports
    closers: list[Any] = field(default_factory=list)  # called when the run is over: flush exporters

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
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{self.receiver_url}/v1/traces")))
        self.closers.append(provider.shutdown)
        return provider

    def close(self) -> None:
        for close in reversed(self.closers):
            close()

    def openai_env(self) -> dict[str, str]:
        return {"OPENAI_API_KEY": "sk-fake-offline", "OPENAI_BASE_URL": self.model_url}
