"""The one transaction skeleton of the two telemetry writers (``writer.py`` for SDK batches,
``otlp_write.py`` for OTLP spans), and the per-dialect helpers both build their statements with.

``write_transaction(engine, work)`` runs ``work(conn)`` as one transaction:

* on SQLite, inside this process's write lock (``store/sql/lock.py``: SQLite has one writer; the lock
  keeps our own requests from contending for it), and a WAL checkpoint now and then after the lock is
  released (``sqlite_checkpoint.py``);
* on PostgreSQL, in one transaction that is run again after a deadlock or a serialization failure
  (at most ``MAX_ATTEMPTS`` times in all), so concurrent writers of the same runs never fail a batch;
* with any error of a statement sent straight to the driver (COPY, cached multi-row INSERTs) raised as
  SQLAlchemy's, parameters hidden, so callers classify every failure one way and no stored value
  reaches a log line.

A unique violation (a step collided with a stored one after all) is handed to ``on_unique_violation``:
when it answers True the transaction is run again (not counted as a failed attempt).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from agenttracer.store.sql.lock import write_lock
from agenttracer.store.sql.write.sql import Statements, statements_for
from agenttracer.store.sql.write.sqlite_checkpoint import after_commit
from agenttracer.store.sql.write.step_rows import StepRows

T = TypeVar("T")

# PostgreSQL error codes worth one more try: deadlock detected, serialization failure.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
UNIQUE_VIOLATION = "23505"
MAX_ATTEMPTS = 3


def write_transaction(
    engine: sa.Engine,
    work: Callable[[sa.Connection], T],
    *,
    on_retry: Callable[[], None] | None = None,
    on_unique_violation: Callable[[], bool] | None = None,
) -> T:
    """``work(conn)`` in one committed transaction (module docstring: lock, retries, errors);
    ``on_retry`` is called before each run that follows a failed one."""
    failed = 0
    while True:
        try:
            with write_lock(engine), engine.begin() as conn:
                result = _driver_errors_as_sqlalchemy(conn, work)
            after_commit(engine)  # SQLite: now and then a WAL checkpoint, outside the lock
            return result
        except sa.exc.DBAPIError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate == UNIQUE_VIOLATION and on_unique_violation is not None and on_unique_violation():
                if on_retry is not None:
                    on_retry()
                continue
            failed += 1
            if sqlstate in RETRYABLE_SQLSTATES and failed < MAX_ATTEMPTS:
                if on_retry is not None:
                    on_retry()
                continue
            raise


def _driver_errors_as_sqlalchemy(conn: sa.Connection, work: Callable[[sa.Connection], T]) -> T:
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        return work(conn)
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(
            None, None, exc, dbapi_error, hide_parameters=True, dialect=conn.dialect
        ) from None


_HELPERS: weakref.WeakKeyDictionary[sa.Dialect, tuple[StepRows, Statements]] = weakref.WeakKeyDictionary()


def driver_helpers(dialect: sa.Dialect) -> tuple[StepRows, Statements]:
    """Row preparation and statements for ``dialect``, built once per engine (they look up processors)."""
    helpers = _HELPERS.get(dialect)
    if helpers is None:
        helpers = _HELPERS[dialect] = (StepRows(dialect), statements_for(dialect))
    return helpers
