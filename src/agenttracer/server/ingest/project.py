"""Which project a write goes into: the one rule for ``/v1/ingest`` and ``/v1/traces``.

With keys on, the ingest key decides: it is bound to exactly one project and everything it sends is
stored there. A request that names a project (the ``X-AgentTracer-Project`` header, a batch's
``project`` field, an OTLP resource's ``agenttracer.project``) must name that one; naming another is
refused with 403 and nothing of the request is stored. Without a key (auth off, local use), what the
request names decides, else ``default``; a batch's header and body must agree. A malformed slug is
refused (422 on ``/v1/ingest``, 400 on ``/v1/traces``, as its other whole-request errors), never
stored under some other project. No answer echoes the value sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from agenttracer.model import DEFAULT_PROJECT, PROJECT_RULE, is_valid_project
from agenttracer.server.auth import Principal
from agenttracer.server.ingest.body import Problem

WRONG_PROJECT_RULE = "must be the ingest key's own project, or left out: a key writes into its project only"
CONFLICT_RULE = "every project named by one request must be the same"


def write_project(principal: Principal, named: Iterable[tuple[str, object]], *, invalid_status: int = 422) -> str:
    """The project of a write by ``principal`` whose request names ``named`` ((where, value) pairs,
    None values left out). Raises Problem (403 a key's other project, ``invalid_status`` a bad slug,
    422 two different projects without a key)."""
    given = [(where, value) for where, value in named if value is not None]
    for where, value in given:
        if not is_valid_project(value):
            raise Problem(invalid_status, "invalid_project", where, PROJECT_RULE)
    if principal.key_id is not None:
        bound = principal.projects or frozenset()
        if len(bound) != 1:
            raise Problem(403, "no_project", "authorization", "an ingest key must be bound to exactly one project")
        (own,) = bound
        for where, value in given:
            if value != own:
                raise Problem(403, "wrong_project", where, WRONG_PROJECT_RULE)
        return own
    values = {value for _, value in given}
    if len(values) > 1:
        raise Problem(invalid_status, "conflicting_project", given[-1][0], CONFLICT_RULE)
    return str(values.pop()) if values else DEFAULT_PROJECT
