"""Self time (store/self_time.py): each moment of a run goes to the innermost steps running then, split
evenly among parallel ones, so the steps' self times plus the untraced time are exactly the run's duration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agenttracer.store.self_time import StepInterval, self_times

MS = 1000  # the function takes microseconds


def test_hand_computed_nested_and_parallel_run() -> None:
    # A 100 ms run: root 0–90; under it A 10–40 (with grandchild A1 10–20) and B 30–60, in parallel.
    #   0–10 root · 10–20 A1 · 20–30 A · 30–40 A and B share (5 each) · 40–60 B · 60–90 root · 90–100 untraced
    steps: list[StepInterval] = [(1, None, 0, 90 * MS), (2, 1, 10 * MS, 40 * MS), (3, 1, 30 * MS, 60 * MS),
                                 (4, 2, 10 * MS, 20 * MS)]
    times, untraced = self_times(0, 100 * MS, steps)
    assert times == [40.0, 15.0, 25.0, 10.0]
    assert untraced == 10.0


def test_flat_sequential_steps_keep_their_own_time() -> None:
    times, untraced = self_times(0, 50 * MS, [(1, None, 5 * MS, 15 * MS), (2, None, 15 * MS, 45 * MS)])
    assert times == [10.0, 30.0]
    assert untraced == 10.0


def test_parallel_top_level_steps_split_the_time_they_share() -> None:
    times, untraced = self_times(0, 30 * MS, [(1, None, 0, 20 * MS), (2, None, 10 * MS, 30 * MS)])
    assert times == [15.0, 15.0]
    assert untraced == 0.0


def test_many_identical_parallel_children_share_their_parent_evenly() -> None:
    children = [(i, 1, 0, 10 * MS) for i in range(2, 12)]
    times, untraced = self_times(0, 10 * MS, [(1, None, 0, 10 * MS), *children])
    assert times[0] == 0.0
    assert times[1:] == [1.0] * 10
    assert untraced == 0.0


def test_a_parent_arriving_later_than_its_children_is_found_by_seq() -> None:
    # The order of the rows does not matter: the parent (seq 5) comes last, as a parent span does.
    times, _ = self_times(0, 10 * MS, [(6, 5, 2 * MS, 4 * MS), (7, 5, 6 * MS, 9 * MS), (5, None, 0, 10 * MS)])
    assert times == [2.0, 3.0, 5.0]


def test_a_missing_parent_makes_the_child_top_level() -> None:
    times, untraced = self_times(0, 10 * MS, [(2, 99, 0, 4 * MS)])
    assert times == [4.0]
    assert untraced == 6.0


def test_steps_are_clipped_to_their_run_and_children_to_their_parent() -> None:
    # The root sticks out of the run on both sides; its child outlives it.
    times, untraced = self_times(10 * MS, 20 * MS, [(1, None, 0, 30 * MS), (2, 1, 15 * MS, 40 * MS)])
    assert times == [5.0, 5.0]
    assert untraced == 0.0


def test_cycles_and_self_parents_do_not_hang_or_double_count() -> None:
    steps: list[StepInterval] = [(1, 2, 0, 10 * MS), (2, 1, 0, 10 * MS), (3, 3, 10 * MS, 20 * MS)]
    times, untraced = self_times(0, 20 * MS, steps)
    assert sum(times) + untraced == 20.0
    assert times[2] == 10.0


def test_a_run_without_steps_is_all_untraced() -> None:
    assert self_times(0, 7 * MS, []) == ([], 7.0)


@st.composite
def runs(draw: st.DrawFn) -> tuple[int, int, list[StepInterval]]:
    n = draw(st.integers(0, 25))
    end = draw(st.integers(0, 10_000))
    steps: list[StepInterval] = []
    for seq in range(1, n + 1):
        parent = draw(st.one_of(st.none(), st.integers(1, n + 2)))  # any seq, itself, or one that is missing
        a = draw(st.integers(-1_000, 11_000))
        b = draw(st.integers(a, 12_000))
        steps.append((seq, parent, a, b))
    return 0, end, steps


@settings(max_examples=300, deadline=None)
@given(runs())
def test_self_times_and_untraced_add_up_to_the_run_duration(run: tuple[int, int, list[StepInterval]]) -> None:
    start, end, steps = run
    times, untraced = self_times(start, end, steps)
    assert len(times) == len(steps)
    assert min(times, default=0.0) >= 0.0 and untraced >= 0.0
    assert sum(times) + untraced == pytest.approx((end - start) / MS, rel=1e-9, abs=1e-9)
    for (_seq, _parent, a, b), t in zip(steps, times, strict=True):
        assert t <= max(0, min(b, end) - max(a, start)) / MS + 1e-9  # never more than its own clipped time
