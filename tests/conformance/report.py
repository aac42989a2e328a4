"""Prints, per recording, how its replay differs from the expected verdict (nothing = it matches):
``python -m tests.conformance.report [--db URL] [FRAMEWORK ...]``.

For whoever changes the assembler, the mapping or an integration: it replays the whole corpus into a
fresh database (a temporary SQLite file unless ``--db`` names an empty, migrated one) through a real
Ingest API and reads the verdicts back through the Query API, like test_replay.py, without pytest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

from agenttracer.server.ingest import create_app as ingest_app
from agenttracer.server.query import create_app as query_app
from agenttracer.server.settings import Settings
from agenttracer.store.sql.schema.engine import make_engine
from agenttracer.store.sql.schema.migrate import upgrade
from tests.conformance import replay
from tests.conformance.expected import expected_for, problems
from tests.support.servers import serve_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frameworks", nargs="*")
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--steps", action="store_true", help="also print each run's steps")
    parser.add_argument("--gaps", action="store_true", help="print test_replay.GAPS for what does not match")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'corpus.db'}"
        engine = make_engine(url, poolclass=sa.pool.NullPool)
        upgrade(engine)
        engine.dispose()
        settings = Settings(database_url=url)
        with serve_app(ingest_app(settings)) as ingest, serve_app(query_app(settings)) as query, \
                httpx.Client(timeout=30) as client:
            met = 0
            gaps: dict[str, str] = {}
            chosen = [r for r in replay.recordings() if not args.frameworks or r.framework in args.frameworks]
            for recording in chosen:
                salt = uuid.uuid4().hex
                found: dict[str, list[str]] = {}
                for mode in replay.MODES:
                    replay.post_all(client, ingest, replay.requests_for(recording, mode, salt))
                replay.sweep_an_hour_later(url)
                for mode in replay.MODES:
                    (run_id,) = replay.run_ids(recording, mode, salt)
                    detail = client.get(f"{query}/v1/runs/{run_id}", params={"limit": 1000}).json()
                    found[mode] = problems(detail, expected_for(recording.framework, recording.scenario))
                    if args.steps and mode == "as_recorded":
                        for s in detail["steps"]:
                            print(f"    {s['seq']:>3} {s['parent_seq'] or '-':>3} {s['step_type']:<9} "
                                  f"{s['name'][:40]:<40} {s['status']:<5} a{s['attempt']} "
                                  f"r{s['retry_of_seq'] or '-'} {s.get('error_class') or ''} "
                                  f"{s.get('failure_code') or ''}")
                distinct = {tuple(p) for p in found.values()}
                if distinct == {()}:
                    met += 1
                    print(f"ok    {recording.name}")
                    continue
                for mode, missed in found.items():
                    if len(distinct) == 1:
                        print(f"GAP   {recording.name}: {'; '.join(missed)}")
                        break
                    print(f"GAP   {recording.name} [{mode}]: {'; '.join(missed) or 'matches'}")
                gaps[recording.name] = " | ".join(f"{m}: {'; '.join(p)}" for m, p in found.items() if p) \
                    if len(distinct) > 1 else "; ".join(found["as_recorded"])
            print(f"{met}/{len(chosen)} recordings replay to their expected verdict")
            if args.gaps:
                print_gaps(gaps)


def print_gaps(gaps: dict[str, str]) -> None:
    """The GAPS table of test_replay.py, in its own syntax."""
    print("GAPS: dict[tuple[str, str], str] = {")
    for name, gap in gaps.items():
        framework, scenario = name.split("/")
        lines = textwrap.wrap(f"main: {gap}", 100, drop_whitespace=False)
        print(f"    ({json.dumps(framework)}, {json.dumps(scenario)}): (")
        print("\n".join(f"        {json.dumps(line)}" for line in lines) + "),")
    print("}")


if __name__ == "__main__":
    main()
