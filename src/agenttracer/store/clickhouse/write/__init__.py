"""The ClickHouse write side: SDK batches, OTLP spans, the abandonment sweep and retention."""
