"""Where ``GET /v1/compare`` spends its time: each SQL statement it runs, timed, with its plan.

    python -m benchlib.explain_compare --url 'postgresql://…/at_bench?options=-csearch_path%3Dds_1000000' \
        --days 30 --agent support-bot --base 2.5.0 --candidate 2.6.0

Runs ``store.read.compare.compare_versions`` once on the loaded data set (the query the
dashboard's Agents & versions view makes, and query_latency's compare case) while recording every
statement, then repeats each under ``EXPLAIN (ANALYZE, BUFFERS)``. PostgreSQL only.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

from agenttracer.store.sql.read.compare import compare_versions
from agenttracer.store.sql.schema.engine import make_engine
from benchlib.explain_stats import add_common_arguments, explain, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--agent", default="support-bot")
    parser.add_argument("--base", default="2.5.0")
    parser.add_argument("--candidate", default="2.6.0")
    parser.add_argument("--environment", default=None)
    parser.set_defaults(days=30.0)
    args = parser.parse_args()
    end = datetime.fromisoformat(args.end).astimezone(timezone.utc)
    since = end - timedelta(days=args.days)
    engine = make_engine(args.url, readonly=True)
    recorded, total = record(engine, args.set, lambda conn: compare_versions(
        conn, args.agent, args.base, args.candidate, args.environment, since, end))
    print(f"compare_versions over {args.days:g} day(s): {total * 1000:,.0f} ms in {len(recorded)} statements")
    explain(engine, recorded, args.plan_lines)
    engine.dispose()


if __name__ == "__main__":
    main()
