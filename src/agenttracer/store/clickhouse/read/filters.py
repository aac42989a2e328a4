"""``RunFilters`` as ClickHouse conditions, split by what each may see (``store/clickhouse/read/sql.py``).

``stable`` conditions hold for every version of a run (project, identity, step names) and may cut the
rows before the newest version is picked; ``newest`` conditions (status, failure, time) hold for the
newest version only. ``matching_runs`` combines them into the subquery of the matching runs' newest
versions, exact whatever versions are stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from agenttracer.store.clickhouse.newest import Params, at, in_projects, latest_runs, micros, where
from agenttracer.store.filters import RunFilters

IDENTITY = ("agent_id", "agent_version", "environment")


def stable(f: RunFilters, params: Params) -> list[str]:
    """Conditions on the columns a run never changes: its project, its identity once set, its steps."""
    conds = in_projects(f.projects, params)
    for name in IDENTITY:
        value = getattr(f, name)
        if value is None:
            continue
        if value == "":  # '' is a placeholder's "not known yet", which no filter names (None in SQL)
            conds.append("0")
        else:
            params[name] = value
            conds.append(f"{name} = {{{name}:String}}")
    if f.step_name is not None:
        params["step_name"] = f.step_name
        step_scope = where([*in_projects(f.projects, params), "name = {step_name:String}"])
        conds.append(f"run_id IN (SELECT run_id FROM steps WHERE {step_scope})")
    return conds


def newest(f: RunFilters, params: Params) -> list[str]:
    """Conditions on what changes between a run's versions, for its newest version only."""
    conds = []
    for name in ("status", "failure_type", "failure_code"):
        value = getattr(f, name)
        if value is not None:
            params[name] = value
            conds.append(f"{name} = {{{name}:String}}")
    if f.since is not None:
        params["since"] = micros(f.since)
        conds.append(f"started_at >= {at('since')}")
    if f.until is not None:
        params["until"] = micros(f.until)
        conds.append(f"started_at < {at('until')}")
    return conds


def time_window(f: RunFilters) -> list[str]:
    """The window as conditions on any version (only to narrow which runs are looked at)."""
    out = []
    if f.since is not None:
        out.append(f"started_at >= {at('since')}")
    if f.until is not None:
        out.append(f"started_at < {at('until')}")
    return out


def matching_runs(f: RunFilters, columns: Sequence[str], params: Params, narrow: Sequence[str] = ()) -> str:
    """``FROM`` text: the newest versions of the runs matching ``f``, with ``columns``; ``narrow``:
    conditions on the time columns a newest version must also meet (they narrow the scan as well).

    With a time window, the runs with a version in it are found first and every version of those is
    then read, so a run whose start moved (a late ``run_start``) is judged by its newest version.
    """
    pre = stable(f, params)
    post = [*newest(f, params), *narrow]
    window = [*time_window(f), *narrow]
    if window:
        scope = where([*pre, *window])
        pre = [*in_projects(f.projects, params), f"run_id IN (SELECT run_id FROM runs WHERE {scope})"]
    return f"{latest_runs(columns, pre)} AND {where(post)}"
