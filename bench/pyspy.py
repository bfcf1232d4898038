"""Summarise py-spy raw (collapsed) stacks: where the time goes, per thread and function.

    python -m bench.pyspy PROFILE.txt [--top 40] [--thread NAME] [--since FUNC]

Inclusive time counts a function once per sample it appears in (recursion counted once);
self time is the innermost frame. Idle samples (py-spy marks them only with --idle) are not
recorded by `python -m bench --profile`, so percentages are of busy samples.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("/site-packages/", "/dist-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def load(path: Path, thread: str | None, since: str | None) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        body, _, count = line.rpartition(" ")
        frames = body.split(";")
        if thread and thread not in frames[0]:
            continue
        names = [short(f) for f in frames[1:]] if frames and frames[0].startswith(
            ("thread", "process")) or "(0x" in frames[0] else [short(f) for f in frames]
        if since:
            idx = next((i for i, f in enumerate(names) if since in f), None)
            if idx is None:
                continue
            names = names[idx:]
        stacks.append((names, int(count)))
    return stacks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.pyspy")
    p.add_argument("profile")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--thread", help="only stacks of threads whose label contains this")
    p.add_argument("--since", help="only the part of stacks below a frame containing this")
    args = p.parse_args(argv)
    path = Path(args.profile)
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        if line.strip():
            body, _, count = line.rpartition(" ")
            threads[body.split(";")[0]] += int(count)
    stacks = load(path, args.thread, args.since)
    total = sum(c for _, c in stacks) or 1
    incl: Counter[str] = Counter()
    selft: Counter[str] = Counter()
    for names, count in stacks:
        for name in set(names):
            incl[name] += count
        if names:
            selft[names[-1]] += count
    out = sys.stdout
    out.write(f"{path}: {total} samples\n\nthreads:\n")
    for name, count in threads.most_common(10):
        out.write(f"  {count:7d}  {name}\n")
    out.write(f"\ninclusive (top {args.top}):\n")
    for name, count in incl.most_common(args.top):
        out.write(f"  {100 * count / total:5.1f}%  {name}\n")
    out.write(f"\nself (top {args.top}):\n")
    for name, count in selft.most_common(args.top):
        out.write(f"  {100 * count / total:5.1f}%  {name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
