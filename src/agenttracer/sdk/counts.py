"""The delivery accounting the tracer reports: ``DeliveryStats`` (what was produced and what became of
it) and ``DropCounter`` (a count the agent's thread bumps without a lock)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeliveryStats:
    """A snapshot of what the tracer produced and what became of it.

    ``dropped`` maps a reason (``queue_full``, ``http_400``, ``rejected``, ``shutdown``, ``closed``,
    ``invalid_failure``…) to a count of events. ``retried`` counts re-sent requests. ``removed`` counts
    metadata keys, names and messages the privacy policy removed (the event itself was still sent) and
    ``coerced`` values mapped onto the vocabulary; both by reason only, never by value.
    """

    produced: int
    delivered: int
    dropped: dict[str, int]
    retried: int
    queued: int
    in_flight: int
    removed: dict[str, int] = field(default_factory=dict)
    coerced: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class DropCounter:
    """A count of drops that the agent's thread bumps without a lock.

    ``add`` is ``itertools.count``'s ``__next__``: one C call, atomic under the GIL, so concurrent agent
    threads never lose a count. ``read`` takes a number from the same counter, which counts the read
    too; it subtracts the reads made so far. Reads must not run concurrently (the transport reads
    under its lock).
    """

    __slots__ = ("_reads", "add")

    def __init__(self) -> None:
        self.add: Callable[[], int] = itertools.count().__next__
        self._reads = 0

    def read(self) -> int:
        taken = self.add() - self._reads
        self._reads += 1
        return taken
