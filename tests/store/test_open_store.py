"""Opening a store from its URL: the scheme picks the backend, which is imported only when asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agenttracer.store import backend_for, display_url, open_store, scheme_of


@pytest.mark.parametrize(
    ("url", "package"),
    [
        ("sqlite:///x.db", "agenttracer.store.sql"),
        ("postgresql://u@h/db", "agenttracer.store.sql"),
        ("postgresql+psycopg://u@h/db", "agenttracer.store.sql"),
        ("postgres://u@h/db", "agenttracer.store.sql"),
        ("clickhouse://u:p@h:8123/db", "agenttracer.store.clickhouse"),
        ("chdb:///var/lib/at", "agenttracer.store.clickhouse"),
        ("SQLite:///x.db", "agenttracer.store.sql"),
    ],
)
def test_the_scheme_picks_the_backend(url: str, package: str) -> None:
    assert backend_for(url) == package


@pytest.mark.parametrize("url", ["mysql://u@h/db", "", "x.db", "http://h/"])
def test_a_scheme_no_backend_takes_is_refused_naming_the_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"scheme must be one of sqlite://, postgresql://.*chdb://"):
        open_store(url)


def test_scheme_of_drops_the_driver() -> None:
    assert scheme_of("postgresql+psycopg://h/db") == "postgresql"


def test_a_printed_url_hides_the_password_only() -> None:
    assert display_url("postgresql://me:s3cret@db.example:5432/at") == "postgresql://me:***@db.example:5432/at"
    assert display_url("clickhouse://me:s3cret@h:8123/db") == "clickhouse://me:***@h:8123/db"
    assert display_url("sqlite:///.agenttracer/agenttracer.db") == "sqlite:///.agenttracer/agenttracer.db"
    assert "s3cret" not in display_url("postgresql://me:s3cret@[::1]:5432/at")


def test_opening_a_sqlite_store_loads_no_clickhouse_package(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'a.db').as_posix()}"
    code = (
        "import sys\n"
        "from agenttracer.store import open_store\n"
        f"store = open_store({url!r})\n"
        "store.migrate()\n"
        "store.close()\n"
        "print(store.backend, sorted(m for m in sys.modules if m.split('.')[0] in ('chdb', 'clickhouse_connect')"
        " or m.startswith('agenttracer.store.clickhouse')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "sqlite []"
