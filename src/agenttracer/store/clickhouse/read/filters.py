"""``RunFilters`` as ClickHouse conditions, split by what each may see (``store/clickhouse/read/sql.py``).

``stable`` conditions hold for every version of a run (project, identity, step names) and, with the
time window (a sorting-key column), narrow what ``FINAL`` merges; ``newest`` conditions (status,
failure) are applied to the merged newest versions. ``matching_runs`` combines them.
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
    return conds


def time_window(f: RunFilters, params: Params) -> list[str]:
    """The window on ``started_at`` (a sorting-key column: it narrows the merge)."""
    out = []
    if f.since is not None:
        params["since"] = micros(f.since)
        out.append(f"started_at >= {at('since')}")
    if f.until is not None:
        params["until"] = micros(f.until)
        out.append(f"started_at < {at('until')}")
    return out


def matching_runs(f: RunFilters, columns: Sequence[str], params: Params, narrow: Sequence[str] = ()) -> str:
    """``FROM`` text: the newest versions of the runs matching ``f``, with ``columns``; ``narrow``: more
    conditions on the sorting key's columns (the rollup reader's hours)."""
    scope = [*stable(f, params), *time_window(f, params), *narrow]
    return f"{latest_runs(columns, scope)} AND {where(newest(f, params))}"
