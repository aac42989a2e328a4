"""A run belongs to the write path that created it, on SQLite and PostgreSQL: the SDK's events for a run
sent over OTLP are refused one by one with the rule, and so are OTLP spans for a run the SDK sent — even
one whose only stored event is its run_start; nothing of the other source is stored."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from agenttracer.store.run_state import Outcome, other_source_rule
from agenttracer.store.sql.schema.tables import runs, steps
from agenttracer.store.sql.write.otlp_write import write_spans
from tests.store.test_abandon import write
from tests.store.test_otlp_write import NOW, RUN, rec, root
from tests.support.events import failure, new_run_id, run_end, run_start, step

ROOT_SPAN = root()

SDK_REFUSED = ("rejected", "run_id", other_source_rule("sdk"))


def answers(outcomes: list[Outcome]) -> list[tuple[str, str | None, str | None]]:
    return [(o.status, o.field, o.rule) for o in outcomes]


def stored(engine: sa.Engine, run_id: str) -> tuple[dict[str, object], list[tuple[object, ...]]]:
    with engine.connect() as conn:
        run = dict(conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().one())
        rows = conn.execute(
            sa.select(steps.c.seq, steps.c.name, steps.c.span_id).where(steps.c.run_id == run_id).order_by(steps.c.seq)
        ).all()
    return run, [tuple(r) for r in rows]


def test_sdk_events_for_an_otlp_run_are_refused_and_nothing_of_them_is_stored(engine: sa.Engine) -> None:
    write_spans(engine, [rec("00000000000000a1", 5, 10), rec("00000000000000a2", 20, 30)], NOW)
    before = stored(engine, RUN)
    assert before[0]["source"] == "otlp"

    # seq 1 collides with a span's step, seq 7 does not: both are refused, as are the run-level events.
    events = [run_start(RUN), step(RUN, 1, name="sdk_step"), step(RUN, 7), step(RUN, 7),
              failure(RUN), run_end(RUN, status="failure")]
    outcomes = write(engine, events, NOW)

    assert answers(outcomes) == [SDK_REFUSED] * 6
    assert stored(engine, RUN) == before


def test_an_sdk_run_start_alone_makes_the_run_the_sdks(engine: sa.Engine) -> None:
    write(engine, [run_start(RUN)], NOW)

    written = write_spans(engine, [ROOT_SPAN, rec("00000000000000a1", 5, 10)], NOW)

    assert (written.accepted, written.rejected, written.other_source) == (0, 2, 2)
    run, rows = stored(engine, RUN)
    assert (run["source"], run["status"], run["agent_id"], rows) == ("sdk", "running", "support-agent", [])


def test_spans_for_an_sdk_run_are_refused_beside_the_requests_other_traces(engine: sa.Engine) -> None:
    sdk_run = new_run_id()
    write(engine, [run_start(sdk_run), step(sdk_run, 1), run_end(sdk_run)], NOW)
    before = stored(engine, sdk_run)

    other = rec("00000000000000b1", 5, 10)
    written = write_spans(engine, [rec("00000000000000a1", 5, 10, run_id=sdk_run), other], NOW)

    assert (written.accepted, written.rejected, written.other_source) == (1, 1, 1)
    assert stored(engine, sdk_run) == before
    assert stored(engine, RUN)[1] == [(1, "n1", "00000000000000b1")]


def test_each_source_keeps_writing_its_own_runs(engine: sa.Engine) -> None:
    write_spans(engine, [rec("00000000000000a1", 5, 10)], NOW)
    assert write_spans(engine, [ROOT_SPAN], NOW + timedelta(seconds=1)).accepted == 1
    sdk_run = new_run_id()
    write(engine, [run_start(sdk_run)], NOW)
    assert [o.status for o in write(engine, [step(sdk_run, 1), run_end(sdk_run)], NOW)] == ["accepted"] * 2
    assert (stored(engine, RUN)[0]["status"], stored(engine, sdk_run)[0]["status"]) == ("success", "success")
