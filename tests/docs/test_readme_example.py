"""The README's Python example, run as written against a real Ingest API: what it promises is stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from agenttracer.store.sql.schema.tables import runs, steps

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_readme_example_records_a_run_with_its_steps(live_ingest: str, engine: sa.Engine) -> None:
    code = re.search(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert code is not None, "README.md has no Python example"
    source = code.group(1)
    assert 'api_url="http://localhost:8000"' in source
    namespace: dict[str, object] = {}
    exec(compile(source.replace("http://localhost:8000", live_ingest), "README.md", "exec"), namespace)
    tracer = namespace["tracer"]
    assert tracer.flush(10)  # type: ignore[attr-defined]
    tracer.shutdown(5)  # type: ignore[attr-defined]

    with engine.connect() as conn:
        run = conn.execute(sa.select(runs)).one()
        stored = conn.execute(sa.select(steps).order_by(steps.c.seq)).all()
    assert (run.agent_id, run.agent_version, run.environment, run.status) == (
        "invoice-bot", "2.3.0", "staging", "success")
    assert [(s.step_type, s.name) for s in stored] == [("retrieval", "load_invoice"), ("tool", "payments_api")]
    assert stored[1].meta == {"http_status": 200, "items": 3}
