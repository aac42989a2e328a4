"""One Ingest API and one Query API per database for the whole corpus module.

Every recording is replayed under fresh ids (see replay.py), so all of them share one database per
backend; the log of everything the servers wrote is kept for the module, for the canary scan.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.server.otlp_support import server_log
from tests.support.db import BACKENDS, drop_pg_schema, new_pg_schema_url
from tests.support.servers import serve_app


@dataclass
class CorpusServer:
    backend: str
    db_url: str
    ingest_url: str
    query_url: str
    log: object  # io.StringIO of every log record written while the servers ran


@pytest.fixture(scope="module", params=BACKENDS)
def corpus_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusServer]:
    from agenttracer.server.ingest import create_app as ingest_app
    from agenttracer.server.query import create_app as query_app

    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{(tmp_path_factory.mktemp('corpus') / 'agenttracer.db').as_posix()}"
    else:
        url, schema = new_pg_schema_url()
    try:
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        upgrade(engine)
        engine.dispose()
        settings = Settings(database_url=url)
        with server_log() as log, serve_app(ingest_app(settings)) as ingest, serve_app(query_app(settings)) as query:
            yield CorpusServer(str(request.param), url, ingest, query, log)
    finally:
        if schema:
            drop_pg_schema(schema)
