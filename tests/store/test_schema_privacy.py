"""The schema is the third privacy layer: no column can hold more text than the policy lets through.

The test reads the *migrated* database (not tables.py) on SQLite and on PostgreSQL, so a migration
that adds a TEXT column, an unbounded VARCHAR or a BLOB fails here even if tables.py looks fine.
"""

from __future__ import annotations

import sqlalchemy as sa

from agenttracer.privacy import MAX_STORED_STRING_LEN

# JSON columns hold metadata that has passed scrub_metadata (<= 32 keys of <= 64 characters, scalar
# values, strings <= 128 characters). They are the only non-scalar columns allowed.
# The rollups' latency histograms are JSON arrays of integers that only the rollup refresher writes, from
# latencies (tests/store/test_rollup.py checks that they hold nothing else).
ALLOWED_JSON_COLUMNS = {
    ("runs", "meta"),
    ("steps", "meta"),
    ("rollup_runs", "duration_hist"),
    ("rollup_steps", "latency_hist"),
}
BINARY_TYPES = (sa.LargeBinary, sa.types._Binary)


def _violations(engine: sa.Engine) -> list[str]:
    inspector = sa.inspect(engine)
    problems: list[str] = []
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        for column in inspector.get_columns(table):
            name, col_type = column["name"], column["type"]
            where = f"{table}.{name} ({col_type!r})"
            if isinstance(col_type, sa.JSON):
                if (table, name) not in ALLOWED_JSON_COLUMNS:
                    problems.append(f"{where}: JSON outside the metadata columns")
            elif isinstance(col_type, (sa.Text, sa.CLOB)) or type(col_type).__name__.upper() in ("TEXT", "CLOB"):
                problems.append(f"{where}: unbounded text")
            elif isinstance(col_type, sa.String):
                if col_type.length is None:
                    problems.append(f"{where}: string without a length")
                elif col_type.length > MAX_STORED_STRING_LEN:
                    problems.append(f"{where}: longer than the policy allows ({MAX_STORED_STRING_LEN})")
            elif isinstance(col_type, BINARY_TYPES):
                problems.append(f"{where}: binary data")
            elif isinstance(col_type, sa.types.NullType):
                problems.append(f"{where}: type not recognised, cannot prove it bounded")
    return problems


def test_no_column_can_hold_unbounded_or_oversized_text(engine: sa.Engine) -> None:
    assert sa.inspect(engine).get_table_names(), "the migrated database has no tables"
    assert _violations(engine) == []


def test_the_check_catches_a_text_column(engine: sa.Engine) -> None:
    """The guard itself works: a table with the columns it must refuse is reported, on both databases."""
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE privacy_probe (a TEXT, b VARCHAR(4000), c VARCHAR(64))"))
    try:
        found = _violations(engine)
        assert any("privacy_probe.a" in p and "unbounded" in p for p in found)
        assert any("privacy_probe.b" in p and "longer than" in p for p in found)
        assert not any("privacy_probe.c" in p for p in found)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE privacy_probe"))
