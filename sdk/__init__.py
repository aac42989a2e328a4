"""Compatibility package so that ``from sdk.agenttrace import AgentTracer`` works from the repository root."""
