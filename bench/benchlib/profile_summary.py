"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the server's time goes.

    python -m benchlib.profile_summary /tmp/prof/ingest_postgresql.txt [--top 30] [--match agenttracer]

Prints, per function, the share of samples in which it is on the stack (inclusive) and at the top
(self). Idle samples (threads waiting for work) are excluded.
"""

from __future__ import annotations

import argparse
import collections
import re

IDLE = re.compile(r"(\bwait \(threading|_worker \(concurrent|select \(selectors|run_forever|_run_once \(asyncio"
                  r"|\bget \(queue|acquire|epoll)")


def summarise(path: str, top: int, match: str | None) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            if IDLE.search(frames[-1]):
                continue
            total += count
            seen = set()
            for frame in frames:
                name = re.sub(r":\d+\)$", ")", frame)
                if name not in seen:
                    inclusive[name] += count
                    seen.add(name)
            self_[re.sub(r":\d+\)$", ")", frames[-1])] += count
    print(f"{total} busy samples")
    print(f"\n{'incl %':>7} {'self %':>7}  function")
    ranked = [(n, c) for n, c in inclusive.most_common() if match is None or match in n]
    for name, count in ranked[:top]:
        print(f"{100 * count / total:7.1f} {100 * self_[name] / total:7.1f}  {name[:150]}")
    print(f"\n{'self %':>7}  function (top by self time)")
    for name, count in self_.most_common(top):
        print(f"{100 * count / total:7.1f}  {name[:150]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match")
    args = parser.parse_args()
    summarise(args.path, args.top, args.match)


if __name__ == "__main__":
    main()
