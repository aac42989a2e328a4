"""Property tests of the time, number and text rules through a real server on every store (SQLite, PostgreSQL,
ClickHouse):
any value gets a defined answer (2xx or 4xx, never 5xx), and an event is accepted exactly when it is
within the rules of model.py. The oracle here is written independently of the server's code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agenttracer.model import MAX_LATENCY_MS, MAX_META_NUMBER, MAX_SEQ
from agenttracer.server.settings import Settings
from tests.support.events import new_run_id, run_start, step


@pytest.fixture
def live_settings(store_url: str) -> Settings:
    """The live servers of this module run on every store."""
    return Settings(database_url=store_url)

PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Values this close to now + 24 h depend on which clock reads first (the test's or the server's).
CLOCK_MARGIN = timedelta(minutes=5)

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_times = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    offsets,
)
# Also times near the bounds, where mistakes live.
near_bounds = st.one_of(
    st.builds(lambda s: EPOCH + timedelta(seconds=s), st.floats(-3600, 3600)),
    st.builds(lambda s: datetime.now(timezone.utc) + timedelta(hours=24, seconds=s), st.floats(-7200, 7200)),
)


def spell(when: datetime, zulu: bool) -> str:
    text = when.isoformat()
    return text.replace("+00:00", "Z") if zulu else text


def utc_or_none(when: datetime) -> datetime | None:
    """The UTC instant, computed without astimezone (None when it falls outside years 1..9999)."""
    offset = when.utcoffset() or timedelta(0)
    try:
        return when.replace(tzinfo=None) - offset
    except OverflowError:
        return None


def time_ok(when: datetime, now: datetime) -> bool | None:
    """The timestamp rule; None when the answer depends on clock skew between test and server."""
    utc = utc_or_none(when)
    if utc is None:
        return False
    latest = (now + timedelta(hours=24)).replace(tzinfo=None)
    if abs(utc - latest) < CLOCK_MARGIN:
        return None
    return EPOCH.replace(tzinfo=None) <= utc <= latest


def post(base: str, events: list[Any]) -> httpx.Response:
    resp = httpx.post(f"{base}/v1/ingest", json={"events": events}, timeout=60)
    assert resp.status_code < 500, resp.text
    return resp


def statuses(resp: httpx.Response) -> list[str]:
    assert resp.status_code in (200, 422), resp.text
    return [r["status"] for r in resp.json()["results"]]


@PROPERTY
@given(times=st.lists(st.tuples(st.one_of(aware_times, near_bounds), st.booleans()), min_size=1, max_size=20))
def test_a_timestamp_is_accepted_exactly_within_the_rule(live_ingest: str, times: list[tuple[datetime, bool]]) -> None:
    now = datetime.now(timezone.utc)
    events = [run_start(new_run_id(), started_at=spell(when, zulu)) for when, zulu in times]
    results = post(live_ingest, events).json()["results"]
    for (when, _), result in zip(times, results, strict=True):
        expected = time_ok(when, now)
        if expected is None:
            continue
        assert (result["status"] == "accepted") == expected, (when, result)
        if not expected:
            assert [e["code"] for e in result["errors"]] == ["time_range"], (when, result)


@PROPERTY
@given(
    latencies=st.lists(
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.just(MAX_LATENCY_MS)),
        min_size=1,
        max_size=20,
    )
)
def test_a_latency_is_accepted_exactly_within_the_rule(live_ingest: str, latencies: list[float]) -> None:
    rid = new_run_id()
    events = [step(rid, i + 1, latency_ms=value) for i, value in enumerate(latencies)]
    got = statuses(post(live_ingest, events))
    for value, status in zip(latencies, got, strict=True):
        assert (status == "accepted") == (0 <= value <= MAX_LATENCY_MS), (value, status)


@PROPERTY
@given(numbers=st.lists(st.integers(), min_size=1, max_size=20))
def test_a_seq_is_accepted_exactly_within_the_rule(live_ingest: str, numbers: list[int]) -> None:
    rid = new_run_id()
    events = [{**step(rid, 1), "seq": n} for n in numbers]
    got = statuses(post(live_ingest, events))
    first_seen: set[int] = set()
    for n, status in zip(numbers, got, strict=True):
        if 1 <= n <= MAX_SEQ:
            assert status == ("duplicate" if n in first_seen else "accepted"), (n, status)
            first_seen.add(n)
        else:
            assert status == "rejected", (n, status)


@PROPERTY
@given(names=st.lists(st.text(max_size=40), min_size=1, max_size=20))
def test_a_name_is_accepted_exactly_without_control_characters(live_ingest: str, names: list[str]) -> None:
    rid = new_run_id()
    events = [step(rid, i + 1, name=name) for i, name in enumerate(names)]
    got = statuses(post(live_ingest, events))
    for name, status in zip(names, got, strict=True):
        clean = len(name) > 0 and not any(
            ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF for ch in name
        )
        assert (status == "accepted") == clean, (name, status)


@PROPERTY
@given(values=st.lists(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)), max_size=10))
def test_metadata_numbers_are_kept_only_within_the_rule(
    live_ingest: str, live_query: str, values: list[float]
) -> None:
    rid = new_run_id()
    metadata = {f"n{i}": value for i, value in enumerate(values)}
    resp = post(live_ingest, [run_start(rid, started_at=spell(datetime.now(timezone.utc), True), metadata=metadata)])
    assert statuses(resp) == ["accepted"]
    detail = httpx.get(f"{live_query}/v1/runs/{rid}", timeout=60)
    assert detail.status_code == 200, detail.text
    run = detail.json()["run"]
    assert len(run["meta"]) + run["meta_removed"] == len(values)
    for key, value in run["meta"].items():
        assert abs(value) <= MAX_META_NUMBER, (key, value)


@PROPERTY
@given(since=st.one_of(st.none(), aware_times, near_bounds), until=st.one_of(st.none(), aware_times, near_bounds))
def test_since_and_until_get_200_exactly_within_the_rule(
    live_query: str, since: datetime | None, until: datetime | None
) -> None:
    now = datetime.now(timezone.utc)
    params = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
    checks = [time_ok(v, now) for v in (since, until) if v is not None]
    if None in checks:
        return
    expected = all(checks)
    if expected and since is not None and until is not None:
        expected = utc_or_none(since) < utc_or_none(until)  # type: ignore[operator]
    for path in ("/v1/runs", "/v1/stats"):
        resp = httpx.get(f"{live_query}{path}", params=params, timeout=60)
        assert resp.status_code in (200, 422), resp.text
        assert (resp.status_code == 200) == expected, (path, params, resp.text)


@PROPERTY
@given(value=st.text(max_size=140), param=st.sampled_from(["agent_id", "agent_version", "environment", "step_name"]))
def test_any_text_filter_gets_200_exactly_within_the_rule(live_query: str, value: str, param: str) -> None:
    limit = {"agent_id": 128, "agent_version": 64, "environment": 64, "step_name": 128}[param]
    encodable = not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)  # a URL cannot carry a lone surrogate
    if not encodable:
        return
    resp = httpx.get(f"{live_query}/v1/runs", params={param: value}, timeout=60)
    assert resp.status_code in (200, 422), resp.text
    clean = not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
    assert (resp.status_code == 200) == (clean and len(value) <= limit), (param, value, resp.text)
