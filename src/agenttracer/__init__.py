"""AgentTracer: privacy-safe observability for AI agents.

The agent-side package: importing it loads only the standard library and httpx.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
