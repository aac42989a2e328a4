"""The ClickHouse-only store tests' store: a ClickHouseStore on a fresh embedded (chdb) database, for the
behaviour only this store has (its key tables, partition drops, two inserts per write)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agenttracer.store import open_store
from agenttracer.store.clickhouse.store import ClickHouseStore


@pytest.fixture
def store(chdb_url: str) -> Iterator[ClickHouseStore]:
    opened = open_store(chdb_url)
    assert isinstance(opened, ClickHouseStore)
    yield opened
    opened.close()
