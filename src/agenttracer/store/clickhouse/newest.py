"""SQL building blocks of the ClickHouse reads and rollups: the client they need, newest versions, times.

Every statement is sent with server-side parameters (``{name:Type}``), which chdb and
clickhouse-connect bind the same way. Times travel as integer microseconds since the epoch
(``toUnixTimestamp64Micro``), so both clients hand back the same plain ints whatever their own
conversion of DateTime64 is.

A run or a step is stored as several rows while it changes (a late ``run_end``, a late span that
re-judges a run); the newest ``version`` wins and ``is_deleted`` = 1 marks a tombstone
(store/clickhouse/schema). ``latest_runs`` / ``latest_steps`` give the newest versions; conditions on
what changes between versions (status, failure) are applied to them, after the merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from agenttracer.model import UNIX_EPOCH
from agenttracer.store.clickhouse.connection import Params as ConnParams
from agenttracer.store.clickhouse.connection import Result, Settings

Params = dict[str, Any]

# A rollup unit — (project, agent_id, hour of the run's start) — as one string, unit-separated: of a run row,
# and of a rollup row (whose ``hour`` is that hour).
UNIT = "concat(project, char(31), agent_id, char(31), toString(toUnixTimestamp(toStartOfHour(started_at))))"
STORED_UNIT = "concat(project, char(31), agent_id, char(31), toString(toUnixTimestamp(hour)))"


class Queryable(Protocol):
    """What the reads need of a connection (``connection.Connection`` has it): one SELECT's rows."""

    def query(self, sql: str, params: ConnParams = None, settings: Settings = None) -> Result: ...


def fetch(conn: Queryable, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
    """The rows of one SELECT."""
    return conn.query(sql, params, FINAL_SETTINGS).rows


HOUR_US = 3_600_000_000  # an hour in the microseconds ``micros`` gives


def micros(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (how times are compared and read)."""
    delta = moment.astimezone(timezone.utc) - UNIX_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int | None) -> datetime | None:
    """The aware UTC datetime of ``micros`` (None stays None)."""
    if value is None:
        return None
    seconds, us = divmod(int(value), 1_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=us)


def at(name: str) -> str:
    """A parameter holding ``micros`` of a time, as a DateTime64 expression."""
    return f"fromUnixTimestamp64Micro({{{name}:Int64}}, 'UTC')"


def us(column: str) -> str:
    """A DateTime64 column read as microseconds."""
    return f"toUnixTimestamp64Micro({column})"


def in_projects(projects: Sequence[str] | None, params: Params, column: str = "project") -> list[str]:
    """The condition keeping a read inside ``projects`` (none for None: every project)."""
    if projects is None:
        return []
    params["projects"] = list(projects)
    return [f"{column} IN {{projects:Array(String)}}"]


def where(conds: Sequence[str]) -> str:
    return " AND ".join(conds) if conds else "1"


# The same sorting key never spans two partitions (both tables are partitioned by the month of a time in
# their key), so FINAL may merge each partition on its own: in parallel, and without reading across them.
FINAL_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}


def latest_runs(columns: Sequence[str], pre: Sequence[str]) -> str:
    """A subquery of the newest version of every run matching ``pre``, tombstones removed, then ``WHERE
    1`` for the caller's conditions on the newest version; ``columns`` are selected from it.

    ``FINAL`` keeps the newest version per sorting key and drops it when that is a tombstone; a run is
    one key at a time, because the writer tombstones the old key whenever a newer version moves it (a
    late ``run_start`` dating it earlier, its agent becoming known). ``pre`` may name the key columns
    (project, agent_id, started_at, run_id) and the identity, which narrow what is merged; conditions
    on anything that changes between versions (status, failure, ends) belong after it.
    """
    cols = ", ".join(columns)
    return f"(SELECT {cols} FROM runs FINAL WHERE {where(pre)}) WHERE 1"


def latest_steps(columns: Sequence[str], pre: Sequence[str]) -> str:
    """As ``latest_runs`` for steps: the newest version of each (run_id, seq) matching ``pre``."""
    cols = ", ".join(columns)
    return f"(SELECT {cols} FROM steps FINAL WHERE {where(pre)}) WHERE 1"


def none_if_empty(value: Any) -> Any:
    """'' (a placeholder's identity in ClickHouse) as None, as the SQL store answers it."""
    return None if value == "" else value
