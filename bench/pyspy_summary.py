#!/usr/bin/env python3
"""Summarise a ``py-spy record --threads --format raw`` profile as text (stdlib only).

    py-spy record -d 10 -r 200 --threads --format raw -o /tmp/prof.txt --pid PID
    python bench/pyspy_summary.py /tmp/prof.txt [--top 25] [--thread MainThread]

Prints the samples per thread, then per function (line numbers dropped): self time (the leaf
frame) and inclusive time (anywhere on the stack, counted once per sample), as % of all samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    m = FRAME.match(frame)
    return f"{m.group('func')} ({m.group('file')})" if m else frame


def load(path: str, thread: str | None) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    threads: Counter[str] = Counter()
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            name = "(all)"
            while frames and frames[0].startswith(("process ", "thread (")):
                name = frames.pop(0)  # "thread (TID): NAME" with --threads
            threads[name] += n
            if thread and thread not in name:
                continue
            total += n
            names = [frame_name(fr) for fr in frames]
            if names:
                self_t[names[-1]] += n
            for nm in set(names):
                incl[nm] += n
    return threads, self_t, incl, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--thread", help="only samples of threads whose name contains this")
    a = ap.parse_args()
    threads, self_t, incl, total = load(a.profile, a.thread)
    all_samples = sum(threads.values()) or 1
    print("samples per thread")
    for name, n in threads.most_common():
        print(f"  {100 * n / all_samples:5.1f} %  {n:7d}  {name}")
    total = total or 1
    print(f"\nself time, top {a.top} ({total} samples)")
    for name, n in self_t.most_common(a.top):
        print(f"  {100 * n / total:5.1f} %  {name}")
    print(f"\ninclusive time, top {a.top}")
    for name, n in incl.most_common(a.top):
        print(f"  {100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
