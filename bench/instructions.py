"""Instructions a sync costs, counted by valgrind: a measure that does not move with the load
of the machine, to compare checkouts of the controller (issue 17: "within noise of the
early tree").

    python -m bench.instructions TREE [TREE ...] [--services 10000] [--dir DIR]

Each TREE is a checkout (`git worktree add --detach /tmp/early d0a52cb`). For each, with
the bench workload of `--services` (the same in every tree that has `bench.worker`):

- fill: `bench.worker sync` with the CLI replaced by a no-op: imports and filling the
  in-memory store, subtracted from the two below;
- restart: `bench.worker sync` against an NB that a first, unmeasured sync made converge
  (so a restart that writes nothing);
- cold: `bench.worker sync` against an empty NB of its own.

Every tree runs once, unmeasured, before anything is counted, so that no count includes
compiling its modules. Each count runs under `valgrind --tool=cachegrind --cache-sim=no`
(about 20x slower; 2 at a time) and the table gives instructions (G) and each tree's ratio
to the first. Two runs of one tree differ by about 0.5%. Needs valgrind (`apt-get install
-y valgrind`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ovn_sandbox import Sandbox

DRIVER = """
import sys
from ycloud_controller import cli
if sys.argv[1] == "fill":
    cli.main = lambda argv=None: 0
from bench import worker
sys.argv = ["bench.worker", *sys.argv[2:]]
sys.exit(worker.main())
"""


def nb(directory: Path) -> Sandbox:
    """A private NB of its own (the harness's sandbox, ovn-northd paused as in bench)."""
    box = Sandbox(directory)
    box.start()
    box.appctl(box.dir / "northd.ctl", "pause")
    return box


def run(tree: Path, what: str, remote: str, services: int, out: Path,
        valgrind: bool = True) -> float:
    """Instructions (G) of one run of DRIVER (`what`: fill or sync) in `tree`."""
    env = {"PYTHONPATH": f"{tree}:{tree / 'scripts'}", "PATH": "/usr/bin:/bin:/usr/sbin"}
    cmd = [sys.executable, "-c", DRIVER, what, "sync", "--remote", remote,
           "--services", str(services), "--out", str(out), "--log-level", "warning"]
    if valgrind:
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
               f"--cachegrind-out-file={out}.cg", *cmd]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tree} {what} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if not valgrind:
        return 0.0
    found = re.search(r"I\s+refs:\s+([\d,]+)", proc.stderr)
    if not found:
        raise RuntimeError(f"no instruction count from valgrind:\n{proc.stderr[-2000:]}")
    return int(found.group(1).replace(",", "")) / 1e9


def measure(trees: list[Path], services: int, work: Path) -> dict[Path, dict[str, float]]:
    converged = nb(work / "restart-nb")
    remote = converged.state.nb_remote
    try:
        run(trees[0], "sync", remote, services, work / "converge.json", False)
        for tree in trees[1:]:  # every module compiled before anything is counted: a count
            # that compiled them (a fresh checkout's first run) would say 0.6 G more
            run(tree, "fill", remote, services, work / f"{tree.name}-warm.json", False)
        jobs = [(tree, kind) for tree in trees for kind in ("fill", "restart", "cold")]

        def one(job: tuple[Path, str]) -> float:
            tree, kind = job
            tag = f"{tree.name}-{kind}"
            if kind == "cold":
                empty = nb(work / f"{tag}-nb")
                try:
                    return run(tree, "sync", empty.state.nb_remote, services,
                               work / f"{tag}.json")
                finally:
                    empty.stop()
            return run(tree, "fill" if kind == "fill" else "sync", remote, services,
                       work / f"{tag}.json")

        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = dict(zip(jobs, pool.map(one, jobs), strict=True))
    finally:
        converged.stop()
    return {tree: {kind: counts[(tree, kind)] for kind in ("fill", "restart", "cold")}
            for tree in trees}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trees", nargs="+", type=Path, help="checkouts; the first is the base")
    p.add_argument("--services", type=int, default=10000)
    p.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = p.parse_args(argv)
    trees = [t.resolve() for t in args.trees]
    work = args.dir or Path(tempfile.mkdtemp(prefix="ycloud-instr-"))
    found = measure(trees, args.services, work)
    base = found[trees[0]]
    sys.stdout.write("| tree | commit | fill | restart | cold | restart / base | cold / base |\n"
                     "|---|---|---:|---:|---:|---:|---:|\n")
    for tree in trees:
        c = found[tree]
        restart, cold = c["restart"] - c["fill"], c["cold"] - c["fill"]
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        sys.stdout.write(
            f"| {tree} | {head} | {c['fill']:.2f} G | {restart:.2f} G | {cold:.2f} G | "
            f"{restart / (base['restart'] - base['fill']):.3f} | "
            f"{cold / (base['cold'] - base['fill']):.3f} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
