"""The read-only Query API (:8001): runs, run detail, agents, projects, stats and compare (``app``)."""

from agenttracer.server.query.app import create_app

__all__ = ["create_app"]
