"""``GET /v1/agents`` in pages over real HTTP on SQLite and PostgreSQL: newest-seen first, every agent exactly
once across the pages, a bounded page size, and cursors that are sealed and tied to the projects they were
issued for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agenttracer.server.query import create_app
from agenttracer.server.query.runs import DEFAULT_AGENT_PAGE_SIZE, MAX_AGENT_PAGE_SIZE
from agenttracer.server.settings import Settings
from agenttracer.store import open_store
from tests.support.rundata import T0, RunSpec, insert_runs
from tests.support.servers import serve_app

AGENTS = DEFAULT_AGENT_PAGE_SIZE + 30


@dataclass(frozen=True)
class Agents:
    url: str
    newest_first: list[str]

    def get(self, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}/v1/agents", params=params, timeout=30)


@pytest.fixture
def agents(store_url: str) -> Iterator[Agents]:
    # Agent i last ran at T0 + i minutes; every fifth pair shares its time, so ties are ordered by id.
    specs = [RunSpec(f"agent-{i:04d}", "v1", "prod", T0 + timedelta(minutes=i - i % 2 * (i % 5 == 1)), "success")
             for i in range(AGENTS)]
    specs += [RunSpec("agent-0003", "v2", "staging", T0 - timedelta(days=1), "failure")]
    insert_runs(store_url, specs)
    store = open_store(store_url)
    store.create_project("other")  # so that the default scope (every project) differs from project=default
    store.close()
    by_time: dict[str, Any] = {}
    for spec in specs:
        by_time[spec.agent_id] = max(by_time.get(spec.agent_id, spec.started_at), spec.started_at)
    expected = sorted(sorted(by_time), key=lambda a: by_time[a], reverse=True)
    with serve_app(create_app(Settings(database_url=store_url))) as url:
        yield Agents(url, expected)


def _all_pages(agents: Agents, limit: int) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        params: dict[str, Any] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
        r = agents.get(**params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
        assert pages <= AGENTS  # bounded: a cursor that never ends is a failure, not a hang


def test_the_first_page_is_bounded_and_says_where_to_go_on(agents: Agents) -> None:
    body = agents.get().json()
    assert len(body["items"]) == DEFAULT_AGENT_PAGE_SIZE
    assert isinstance(body["next_cursor"], str)
    assert [a["agent_id"] for a in body["items"]] == agents.newest_first[:DEFAULT_AGENT_PAGE_SIZE]


@pytest.mark.parametrize("limit", [1, 7, AGENTS])
def test_pages_hold_every_agent_once_newest_seen_first(agents: Agents, limit: int) -> None:
    items, pages = _all_pages(agents, limit)
    assert [a["agent_id"] for a in items] == agents.newest_first
    assert pages == -(-AGENTS // limit)
    three = next(a for a in items if a["agent_id"] == "agent-0003")
    assert three["run_count"] == 2 and [v["agent_version"] for v in three["versions"]] == ["v1", "v2"]


@pytest.mark.parametrize("limit", [0, MAX_AGENT_PAGE_SIZE + 1])
def test_a_limit_outside_the_range_is_a_422_naming_it(agents: Agents, limit: int) -> None:
    r = agents.get(limit=limit)
    assert r.status_code == 422 and r.json()["field"] == "limit"


def test_a_cursor_not_issued_for_agents_or_for_these_projects_is_a_422(agents: Agents) -> None:
    cursor = agents.get(limit=2).json()["next_cursor"]
    runs_cursor = httpx.get(f"{agents.url}/v1/runs", params={"limit": 1}, timeout=30).json()["next_cursor"]
    edited = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    for bad in (edited, runs_cursor, "x" * 40):
        r = agents.get(limit=2, cursor=bad)
        assert r.status_code == 422, bad
        assert r.json()["field"] == "cursor"
    other_scope = agents.get(limit=2, cursor=cursor, project="default")
    assert other_scope.status_code == 422 and "other projects" in other_scope.json()["message"]
