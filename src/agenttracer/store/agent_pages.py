"""The agents list (``GET /v1/agents``) and its pages: newest-seen first, keyset on ``(last_seen, agent_id)``.

``assemble_agents`` builds the list from a store's (agent, version, environment, runs, last start) rows, the
same on every store.

``runs.list_agents`` orders agents by last seen, newest first, ties and never-dated agents by id;
``page`` cuts that order after a cursor. The cursor names the last agent of a page (its last-seen time
in microseconds and its id), sealed with the server's cursor secret like the runs list's
(``cursor_seal.py``) and tied to the projects it was issued for, so it can neither be forged nor
carried into another scope. An agent seen again while a client pages moves to the front of the order:
if it was behind the cursor, that client meets it on its next listing rather than on this one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agenttracer.model import MAX_ID_LEN, UNIX_EPOCH, has_bad_chars
from agenttracer.store.cursor_seal import SealError, seal, unseal
from agenttracer.store.cursors import CursorError

_MALFORMED = "cursor is not one this server issued: pass back the next_cursor value of a previous page unchanged"
_KIND = "agents"


@dataclass(frozen=True, order=True)
class AgentCursor:
    """Where a page ended, as a sort key: later-seen agents have a smaller key."""

    neg_last_seen_us: int
    agent_id: str


def _key(agent: dict[str, Any]) -> AgentCursor:
    seen = agent["last_seen"] or UNIX_EPOCH
    return AgentCursor(-round((seen - UNIX_EPOCH).total_seconds() * 1_000_000), agent["agent_id"])


def _scope_fingerprint(projects: tuple[str, ...] | None) -> str:
    raw = "\n".join(projects) if projects is not None else "*"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def page(agents: list[dict[str, Any]], limit: int,
         after: AgentCursor | None) -> tuple[list[dict[str, Any]], AgentCursor | None]:
    """The ``limit`` agents after ``after`` in ``agents`` (ordered as ``runs.list_agents`` returns them),
    and the cursor of the next page (None on the last)."""
    rest = agents if after is None else [a for a in agents if _key(a) > after]
    items = rest[:limit]
    return items, (_key(items[-1]) if len(rest) > limit else None)


def encode_cursor(cursor: AgentCursor, projects: tuple[str, ...] | None, key: bytes) -> str:
    return seal(key, {"k": _KIND, "t": cursor.neg_last_seen_us, "a": cursor.agent_id,
                      "f": _scope_fingerprint(projects)})


def decode_cursor(token: str, projects: tuple[str, ...] | None, key: bytes) -> AgentCursor:
    """Open a cursor from ``encode_cursor``; CursorError saying what is wrong."""
    try:
        payload = unseal(key, token)
    except SealError:
        raise CursorError(_MALFORMED) from None
    t, agent_id = payload.get("t"), payload.get("a")
    if payload.get("k") != _KIND or not isinstance(t, int) or isinstance(t, bool) or not isinstance(agent_id, str):
        raise CursorError(_MALFORMED)
    if not 0 < len(agent_id) <= MAX_ID_LEN or has_bad_chars(agent_id):
        raise CursorError(_MALFORMED)
    if payload.get("f") != _scope_fingerprint(projects):
        raise CursorError("cursor was issued for other projects: repeat the first request's project or start over")
    return AgentCursor(t, agent_id)


def assemble_agents(rows: Any) -> list[dict[str, Any]]:
    """The agents list from rows of (agent_id, agent_version, environment, runs, last start), one per
    identity: each agent with its versions and environments, newest first. Shared by every store."""
    agents: dict[str, dict[str, Any]] = {}
    for agent_id, version, environment, count, last_seen in rows:
        # max() over a UTCDateTime column loses the type on SQLite; normalise both backends to aware UTC.
        last_seen = _as_utc(last_seen)
        agent = agents.setdefault(
            agent_id, {"agent_id": agent_id, "run_count": 0, "last_seen": None, "versions": {}, "environments": {}}
        )
        agent["run_count"] += count
        agent["last_seen"] = later_of(agent["last_seen"], last_seen)
        for key, value in (("versions", version), ("environments", environment)):
            if value is None:
                continue
            field = "agent_version" if key == "versions" else "environment"
            entry = agent[key].setdefault(value, {field: value, "run_count": 0, "last_seen": None})
            entry["run_count"] += count
            entry["last_seen"] = later_of(entry["last_seen"], last_seen)
    out = []
    for agent in agents.values():
        agent["versions"] = _newest_first(agent["versions"].values(), "agent_version")
        agent["environments"] = _newest_first(agent["environments"].values(), "environment")
        out.append(agent)
    return _newest_first(out, "agent_id")


def later_of(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two optional times (None is earlier than any time)."""
    if a is None:
        return b
    return a if b is None or a >= b else b


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _newest_first(entries: Any, name_key: str) -> list[dict[str, Any]]:
    # Newest last_seen first; ties (and undated entries) by name, so the order is deterministic.
    ordered = sorted(entries, key=lambda e: e[name_key])
    return sorted(ordered, key=lambda e: e["last_seen"] or UNIX_EPOCH, reverse=True)
