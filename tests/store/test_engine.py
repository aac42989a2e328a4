"""Engine settings the storage layer promises: bounded PostgreSQL connects, read-only query engines."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from agenttracer.store.sql.schema.engine import PG_CONNECT_TIMEOUT_S, make_engine
from tests.support.db import missing, pg_base_url


def _connect_params(url: str) -> dict[str, Any]:
    """The keyword arguments the driver really received when the engine opened a connection."""
    engine = make_engine(url)
    seen: dict[str, Any] = {}

    @sa.event.listens_for(engine, "do_connect")
    def _capture(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        seen.update(cparams)

    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError:
        missing(f"PostgreSQL is not reachable at {pg_base_url()}")
    finally:
        engine.dispose()
    return seen


@pytest.mark.postgres
def test_postgres_connects_give_up_after_a_bounded_time_by_default() -> None:
    assert _connect_params(pg_base_url())["connect_timeout"] == PG_CONNECT_TIMEOUT_S


@pytest.mark.postgres
def test_a_connect_timeout_in_the_url_wins() -> None:
    sep = "&" if "?" in pg_base_url() else "?"
    params = _connect_params(f"{pg_base_url()}{sep}connect_timeout=3")
    assert str(params["connect_timeout"]) == "3"
