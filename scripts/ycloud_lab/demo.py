"""The demo behind scripts/demo: the lab, the examples served by a Kubernetes API with the
controller on it, the product's node half on every chassis (node agent, installed ycloud-cni,
containerd making every pod by RunPodSandbox), real traffic through every check of
scenarios.py, a table of what answered and what each backend saw.

    scripts/demo            (re)build .demo/: lab in .demo/lab, the API and the controller in
                            the background (`python -m ycloud_lab.apiserver`, .demo/controller.pid,
                            .demo/controller.log, .demo/kubeconfig), node agents and containerd
                            on every chassis, pods, servers, checks; exit 1 when a check fails;
                            leaves everything running
    scripts/demo --down     stop the controller and the lab, remove .demo/

Run as root (network namespaces). A second run stops what the first one started and builds
it again, so it always starts from a clean lab.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ovn_sandbox import pid_alive, read_pid

from ycloud_controller import logs
from ycloud_lab import checkrun, scenarios
from ycloud_lab.cluster import Cluster
from ycloud_lab.lab import DEFAULT_SHAPE, Lab
from ycloud_lab.netns import list_ns
from ycloud_lab.ovsdb import rows as ovsdb_rows
from ycloud_lab.proc import LabError, cmdline, run

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / ".demo"
LAB_DIR = DEMO / "lab"
PIDFILE = DEMO / "controller.pid"
LOGFILE = DEMO / "controller.log"
ENVFILE = DEMO / "env"
PORTFILE = DEMO / "http-port"
KUBECONFIG = DEMO / "kubeconfig"
VENV_BIN = ROOT / ".venv" / "bin"
CONTROLLER = [sys.executable, "-m", "ycloud_controller.cli"]  # the venv's ycloud-controller
MANIFESTS = scenarios.EXAMPLES
MARKER = "ycloud_lab.apiserver"  # the control plane's command line must hold it to be stopped


def say(text: str) -> None:
    sys.stdout.write(f"demo: {text}\n")
    sys.stdout.flush()


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# -- the controller process ---------------------------------------------------------------------
def controller_pid() -> int | None:
    """The recorded controller pid, only while that process is still our controller."""
    pid = read_pid(PIDFILE) if PIDFILE.exists() else None
    if pid is None or not pid_alive(pid, MARKER):
        return None
    line = cmdline(pid)
    return pid if str(MANIFESTS) in line else None


def stop_controller(timeout: float = 10.0) -> bool:
    pid = controller_pid()
    if pid is None:
        PIDFILE.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid, MARKER) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid, MARKER):
        os.kill(pid, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_controller(lab: Lab, http_port: int) -> subprocess.Popen[bytes]:
    KUBECONFIG.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", MARKER, "--manifests", str(MANIFESTS), "--ovn-nb-db",
           lab.nb_remote, "--ovn-sb-db", lab.sb_remote, "--http-port", str(http_port),
           "--kubeconfig", str(KUBECONFIG)]
    with open(LOGFILE, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, stdin=devnull, stdout=log, stderr=log, cwd=ROOT,
                                start_new_session=True)  # outlives the demo
    PIDFILE.write_text(f"{proc.pid}\n")
    PORTFILE.write_text(f"{http_port}\n")
    return proc


def readyz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def render_says_converged(lab: Lab) -> bool:
    """`ycloud-controller render` on the same manifests finds nothing left to write."""
    res = subprocess.run([*CONTROLLER, "render", "--manifests", str(MANIFESTS),
                          "--ovn-nb-db", lab.nb_remote, "--log-level", "warning",
                          "--format", "json"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    return res.returncode == 0 and json.loads(res.stdout or "null") == []


def wait_converged(lab: Lab, proc: subprocess.Popen[bytes], port: int,
                   timeout: float = 90.0) -> None:
    def alive() -> bool:
        if proc.poll() is not None:
            tail = "\n".join(LOGFILE.read_text(errors="replace").splitlines()[-20:])
            raise LabError(f"the controller exited; the end of {LOGFILE}:\n{tail}")
        return True

    scenarios.wait_until(lambda: alive() and readyz(port), timeout,
                         f"the controller's /readyz on port {port}")
    scenarios.wait_until(lambda: alive() and scenarios.expected_lbs_present(lab), timeout,
                         "the examples' load balancers in NB")
    scenarios.wait_until(lambda: alive() and render_says_converged(lab), timeout,
                         "`ycloud-controller render` to find nothing left to write",
                         interval=0.5)


# -- up / down ----------------------------------------------------------------------------------
def down() -> int:
    stopped = stop_controller()
    say("controller stopped" if stopped else "no controller running")
    lab = Lab(DEFAULT_SHAPE, LAB_DIR)
    done = lab.down()
    say(f"lab down: {len(done['processes'])} processes stopped, {len(done['namespaces'])} "
        f"namespaces deleted")
    left = [ns for ns in list_ns() if ns.startswith(f"{lab.lab_id}-")]
    if left:
        raise LabError(f"namespaces left behind: {', '.join(left)}")
    shutil.rmtree(DEMO, ignore_errors=True)
    say(f"removed {rel(DEMO)}")
    return 0


def up() -> int:
    started = time.monotonic()
    if stop_controller():
        say("stopped the controller of a previous run")
    lab = Lab(DEFAULT_SHAPE, LAB_DIR)
    if LAB_DIR.exists() or any(ns.startswith(f"{lab.lab_id}-") for ns in list_ns()):
        lab.down()
        say("removed the lab of a previous run")
    DEMO.mkdir(parents=True, exist_ok=True)
    LOGFILE.unlink(missing_ok=True)
    res = lab.up()
    say(f"lab {res['lab_id']} up in {res['seconds']}s ({rel(LAB_DIR)}: central NB/SB/northd, "
        f"chassis {', '.join(c.name for c in lab.shape.chassis)}, external hosts "
        f"{', '.join(h.name for h in lab.external_hosts)})")
    ENVFILE.write_text(f"export OVN_NB_DB={lab.nb_remote}\nexport OVN_SB_DB={lab.sb_remote}\n")

    port = free_port()
    proc = start_controller(lab, port)
    say(f"API and controller running (pid {proc.pid}, log {rel(LOGFILE)}, "
        f"http://127.0.0.1:{port}/metrics, kubeconfig {rel(KUBECONFIG)})")
    t = time.monotonic()
    wait_converged(lab, proc, port)
    say(f"NB converged in {time.monotonic() - t:.1f}s (/readyz ok, `ycloud-controller render` "
        f"finds no changes)")

    t = time.monotonic()
    lab.cluster = Cluster(lab, MANIFESTS).attach(KUBECONFIG)
    say(f"node agents, ycloud-cni and containerd on {', '.join(sorted(lab.cluster.runtimes))} "
        f"({time.monotonic() - t:.1f}s)")
    t = time.monotonic()
    handles = scenarios.prepare_examples(lab)
    say(f"pods made by containerd's RunPodSandbox through ycloud-cni, {len(handles)} echo "
        f"servers started ({time.monotonic() - t:.1f}s); per pod, the node agent's ADD (to "
        f"ovn-installed) and the whole RunPodSandbox:")
    agent = lab.cluster.agent_add_seconds()
    for pod_port, seconds in sorted(lab.cluster.add_seconds.items()):
        add = f"{agent[pod_port] * 1000:5.0f} ms" if pod_port in agent else "    ?   "
        sys.stdout.write(f"  {pod_port:24} ADD {add}   RunPodSandbox {seconds * 1000:5.0f} ms\n")

    t = time.monotonic()
    rows = checkrun.run_checks(lab)
    say(f"{len(rows)} checks in {time.monotonic() - t:.1f}s\n")
    sys.stdout.write(checkrun.format_table(rows) + "\n\n")
    for row in rows:
        if not row.ok:
            why = row.check.limit if row.check.limit else row.detail
            sys.stdout.write(f"  {row.verdict} {row.check.id}: {why}\n")
            if row.check.limit:
                sys.stdout.write(f"       (seen: {row.detail})\n")
    failed = [r for r in rows if r.counted_failure]

    sys.stdout.write("\n== ovn-nbctl show\n")
    sys.stdout.write(run(["ovn-nbctl", f"--db={lab.nb_remote}", "show"]).stdout)
    sys.stdout.write("\n== load balancers (ovn-nbctl list Load_Balancer)\n")
    for lb in sorted(ovsdb_rows("ovn-nbctl", lab.nb_remote, "--columns=name,vips", "list",
                                "Load_Balancer"), key=lambda r: r["name"]):
        for vip, backends in sorted(lb["vips"].items()):
            sys.stdout.write(f"  {lb['name']:36} {vip:18} -> {backends or '(none: reject)'}\n")
    sys.stdout.write(f"""
== inspect (the lab and the controller keep running)
  source {rel(ENVFILE)}                      # exports OVN_NB_DB / OVN_SB_DB
  {rel(VENV_BIN)}/ycloud-controller inspect service/ns-vpc1/web
  {rel(VENV_BIN)}/ycloud-controller inspect service/demo/multi
  ovn-nbctl show; ovn-nbctl lr-route-list eipgw-pool1; ovn-sbctl list Service_Monitor
  scripts/lab status --dir {rel(LAB_DIR)}
  scripts/lab exec --dir {rel(LAB_DIR)} ext1 -- python3 -m ycloud_lab.traffic client \\
      172.18.0.60 80 --count 4        # scenario 4 by hand from the external host
  curl -s http://127.0.0.1:{port}/metrics | grep ycloud_
  controller log: {rel(LOGFILE)} (JSON lines); pid in {rel(PIDFILE)}
== stop everything: scripts/demo --down
""")
    limits = [r for r in rows if r.check.limit and not r.ok]
    passed = sum(r.ok for r in rows)
    say(f"{passed}/{len(rows)} checks passed"
        + (f", {len(limits)} known limit{'s' if len(limits) > 1 else ''} (not counted)"
           if limits else "")
        + (f", {len(failed)} FAILED: {', '.join(r.check.id for r in failed)}" if failed else "")
        + f"; {time.monotonic() - started:.1f}s in all")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", action="store_true", help="stop and remove everything")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        sys.stderr.write("scripts/demo: needs root (network namespaces, veth, OVS)\n")
        return 2
    logs.configure("console", "warning")  # the kubernetes client's info lines stay out of the table
    try:
        return down() if args.down else up()
    except LabError as exc:
        sys.stderr.write(f"scripts/demo: {exc}\n")
        if not args.down:
            sys.stderr.write(f"scripts/demo: left running for inspection; "
                             f"`scripts/demo --down` removes it (log: {rel(LOGFILE)})\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
