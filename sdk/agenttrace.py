"""The spec's import path, ``from sdk.agenttrace import AgentTracer``: a thin shim over the package."""

from agenttracer import *  # noqa: F403
from agenttracer import __all__  # noqa: F401
