"""The migration runner: ``schema_migrations`` records which numbered migrations a database has.

ClickHouse has no transactional DDL, so each migration's statements are written to be re-runnable
(``IF NOT EXISTS``) and a migration is recorded only after all its statements ran: a run interrupted
half-way is finished by the next ``migrate``. Two processes migrating at once run the same
idempotent statements; the record table (a ReplacingMergeTree keyed by number) keeps one row each.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from agenttracer.store.clickhouse.connection import Connection
from agenttracer.store.clickhouse.schema import migrations as _package

_MODULE_RE = re.compile(r"^v(\d{4})_[a-z0-9_]+$")

RECORD_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    number UInt32,
    name String,
    applied_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY number
"""


@dataclass(frozen=True)
class Migration:
    number: int
    module: str
    name: str
    up: tuple[str, ...]


def migrations() -> list[Migration]:
    """Every migration this code ships, by number."""
    found = []
    for info in pkgutil.iter_modules(_package.__path__):
        match = _MODULE_RE.fullmatch(info.name)
        if match is None:
            continue
        module = importlib.import_module(f"{_package.__name__}.{info.name}")
        found.append(Migration(int(match.group(1)), info.name, module.NAME, tuple(module.UP)))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"two ClickHouse migrations share a number: {numbers}")
    return found


def applied(conn: Connection) -> set[int]:
    conn.command(RECORD_TABLE)
    return {row[0] for row in conn.query("SELECT DISTINCT number FROM schema_migrations").rows}


def upgrade(conn: Connection) -> list[int]:
    """Apply every migration the database lacks, in order; return the numbers applied."""
    done = applied(conn)
    ran = []
    for migration in migrations():
        if migration.number in done:
            continue
        for statement in migration.up:
            conn.command(statement)
        conn.insert(
            "schema_migrations",
            ("number", "name", "applied_at"),
            [(migration.number, migration.name, datetime.now(timezone.utc))],
        )
        ran.append(migration.number)
    return ran


def current_revision(conn: Connection) -> str | None:
    """The newest applied migration as its module name (``v0001_base``), None for an empty database."""
    done = applied(conn)
    known = {m.number: m.module for m in migrations()}
    if not done:
        return None
    newest = max(done)
    return known.get(newest, f"v{newest:04d}")


def head_revision() -> str | None:
    shipped = migrations()
    return shipped[-1].module if shipped else None
