"""Self time: how much of a run's duration each of its steps accounts for, so that the shares add up.

The one definition (docs/analytics.md, "Latency attribution"): every moment of a finished run, from
its start to its end, goes to the *innermost* steps running at that moment — the running steps none
of whose child steps is running then. When several run at once (parallel children, or parallel
top-level steps) they split that moment evenly; a moment when no step runs is *untraced* (the agent's
own code between steps). A step's self time is the sum of what it got. So:

* a step without children, running alone, gets its whole duration;
* a parent gets its time not covered by the union of its children's intervals (while nothing else
  runs beside it);
* the self times of a run's steps plus its untraced time are exactly its duration — nothing is
  counted twice, and overlaps cannot push the sum past 100 %.

Intervals are clipped before they are attributed: a top-level step to its run, a child to its
(clipped) parent, so a child that outlives its parent (or a clock that disagrees) cannot add time. A
``parent_seq`` naming no step of the run (the parent has not arrived yet) or closing a cycle makes
the step top-level. Times are integer microseconds (exact on both databases); the result is in
milliseconds.

``self_times`` is the definition, a pure function of one run's steps that every store applies: the SQL
store through ``store/sql/rollup/selftime.py`` (streaming step rows and summing by group), the ClickHouse
store in its readers and roll-ups.
"""

from __future__ import annotations

from collections.abc import Sequence

# (seq, parent_seq, started_at µs, ended_at µs)
StepInterval = tuple[int, int | None, int, int]

_UNSEEN, _OPEN, _DONE = 0, 1, 2


def _clip(start: int, end: int, steps: Sequence[StepInterval]) -> tuple[list[int], list[int], list[int], list[int]]:
    """Each step's parent index (-1: top-level), depth, and interval clipped to its parent's (or the run)."""
    n = len(steps)
    index = {seq: i for i, (seq, *_rest) in enumerate(steps)}
    parent = [index.get(p, -1) if p is not None else -1 for _, p, _, _ in steps]
    lo, hi, depth = [0] * n, [0] * n, [0] * n
    state = [_UNSEEN] * n
    for i in range(n):
        path = []
        j = i
        while state[j] == _UNSEEN:
            state[j] = _OPEN
            path.append(j)
            p = parent[j]
            if p < 0:
                break
            if state[p] == _OPEN:  # a cycle: the step that closes it is taken as top-level
                parent[j] = -1
                break
            j = p
        for j in reversed(path):
            p = parent[j]
            plo, phi, d = (start, end, 0) if p < 0 else (lo[p], hi[p], depth[p] + 1)
            a = max(steps[j][2], plo)
            lo[j], hi[j], depth[j] = a, max(a, min(steps[j][3], phi)), d
            state[j] = _DONE
    return parent, depth, lo, hi


def self_times(start: int, end: int, steps: Sequence[StepInterval]) -> tuple[list[float], float]:
    """Self time (ms) of each of a run's steps, in the order given, and the run's untraced time (ms).

    ``start``/``end`` bound the run; step times are microseconds since any fixed epoch.
    """
    n = len(steps)
    if n == 0:
        return [], max(0, end - start) / 1000.0
    sequential = _sequential(start, end, steps)
    if sequential is not None:
        return sequential
    parent, depth, lo, hi = _clip(start, end, steps)
    # Ends before starts at the same instant; a child ends before its parent and starts after it.
    events = sorted([(lo[i], 1, depth[i], i) for i in range(n) if hi[i] > lo[i]]
                    + [(hi[i], 0, -depth[i], i) for i in range(n) if hi[i] > lo[i]])
    acc = [0.0] * n
    running_children = [0] * n
    entered = [0.0] * n  # the share counter when a step became innermost
    innermost = [False] * n
    # share: what one innermost step has received since the run started (µs). A step that is innermost
    # from share a to share b receives b - a: O(1) per event, whatever the number of parallel steps.
    share = 0.0
    count = 0  # innermost steps now
    untraced = 0
    previous = start
    for t, is_start, _d, i in events:
        if t > previous:
            if count:
                share += (t - previous) / count
            else:
                untraced += t - previous
            previous = t
        p = parent[i]
        if is_start:
            innermost[i], entered[i] = True, share
            count += 1
            if p >= 0:
                running_children[p] += 1
                if innermost[p]:
                    innermost[p] = False
                    acc[p] += share - entered[p]
                    count -= 1
        else:
            if innermost[i]:
                innermost[i] = False
                acc[i] += share - entered[i]
                count -= 1
            if p >= 0:
                running_children[p] -= 1
                if not running_children[p]:
                    innermost[p], entered[p] = True, share
                    count += 1
    untraced += max(0, end - previous)
    return [a / 1000.0 for a in acc], untraced / 1000.0


def _sequential(start: int, end: int, steps: Sequence[StepInterval]) -> tuple[list[float], float] | None:
    """The common flat case — no step has a parent, none overlaps another — where each step's self time is
    its interval clipped to the run; None otherwise."""
    if any(p is not None for _, p, _, _ in steps):
        return None
    order = sorted(range(len(steps)), key=lambda i: steps[i][2])
    out = [0.0] * len(steps)
    reached = start
    covered = 0
    for i in order:
        a, b = max(steps[i][2], start), min(steps[i][3], end)
        if b <= a:
            continue
        if a < reached:
            return None
        out[i] = (b - a) / 1000.0
        covered += b - a
        reached = b
    return out, max(0, end - start - covered) / 1000.0
