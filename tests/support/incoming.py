"""Wire events as the store's ``Incoming`` items, converted by the Ingest API's own rules, for store tests
that write without a server in between. A test's events are valid by construction: one that does not
convert fails the test with the rule it broke."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agenttracer.server.ingest.events import convert_event
from agenttracer.store.run_state import Incoming


def incoming(events: Sequence[dict[str, Any]], now: datetime) -> list[Incoming]:
    """Each event converted as the Ingest API would at ``now``, in order."""
    items = []
    for i, raw in enumerate(events):
        result, item = convert_event(i, raw, now)
        assert item is not None, result["errors"]
        items.append(item)
    return items
