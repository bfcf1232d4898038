"""CLI of the lab (scripts/lab). Run as root.

  up                      build the lab (reports and exits 0 when it already runs)
  down                    stop everything the lab started, delete its namespaces and files
  status [--json]         chassis, processes, SB registration, bound ports
  exec TARGET -- CMD...   run CMD in the namespace of a chassis, port, host or namespace
                          (on a chassis with its OVS_RUNDIR/OVN_RUNDIR exported: plain
                          ovs-vsctl, ovs-appctl, ovs-ofctl, ovn-appctl -t ovn-controller work)
  stop-chassis NAME       stop NAME's ovn-controller and ovs-vswitchd
  start-chassis NAME      start them again
  recirc CLIENT IP PORT [--proto tcp|udp]
                          send one request and count how deep it nests in each chassis'
                          datapath (tunnel pops and recirculations; the userspace limit is 6)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from ycloud_lab.lab import DEFAULT_DIR, DEFAULT_SHAPE, Lab
from ycloud_lab.proc import LabError, in_ns
from ycloud_lab.recirc import measure


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=argparse.SUPPRESS,
                        help="lab directory (default: $YCLOUD_LAB_DIR or <repo>/.lab)")
    common.add_argument("--shape", default=argparse.SUPPRESS,
                        help="shape file (default: tests/lab/shape.yaml)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="scripts/lab", description=__doc__, parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", parents=[common], help="build the lab")
    sub.add_parser("down", parents=[common], help="tear the lab down")
    st = sub.add_parser("status", parents=[common], help="show the lab")
    st.add_argument("--json", action="store_true")
    ex = sub.add_parser("exec", parents=[common], help="run a command in a lab namespace")
    ex.add_argument("target")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    for name in ("stop-chassis", "start-chassis"):
        p = sub.add_parser(name, parents=[common], help=f"{name.split('-')[0]} one chassis")
        p.add_argument("name")
    rc = sub.add_parser("recirc", parents=[common],
                        help="count a request's recirculations per chassis")
    rc.add_argument("client", help="a plugged port, a chassis (its node port) or a host")
    rc.add_argument("ip")
    rc.add_argument("port", type=int)
    rc.add_argument("--proto", default="tcp", choices=("tcp", "udp"))
    return parser


def _print_status(status: dict) -> None:
    w = sys.stdout.write
    w(f"lab {status['lab_id']} in {status['dir']}: {status['phase']}"
      f" (up in {status['up_seconds']}s)\n  NB {status['nb']}\n  SB {status['sb']}\n")
    w("central: " + ", ".join(f"{n} {s}" for n, s in status["central"].items()) + "\n")
    for name, ch in status["chassis"].items():
        procs = " ".join(f"{d}={'up' if a else 'DOWN'}" for d, a in ch["processes"].items())
        w(f"chassis {name:8} {ch['role']:8} {ch['tunnel_ip']:15} ns={ch['namespace']}"
          f"{' STOPPED' if ch['stopped'] else ''}\n"
          f"    {procs} sb={'registered' if ch['registered'] else 'MISSING'}\n"
          f"    bound: {', '.join(ch['bound']) or '-'}\n")
    for host, ns in status["hosts"].items():
        w(f"host {host:8} ns={ns}\n")
    for port, info in status["ports"].items():
        w(f"port {port} ({info['role']}) on {info['chassis']} ns={info['namespace']} "
          f"{' '.join(info['ips'])}\n")
    others = {n: a for n, a in status["processes"].items()
              if n.split("/")[0] not in status["chassis"]}
    for name, alive in others.items():
        w(f"process {name}: {'running' if alive else 'gone'}\n")


def _healthy(status: dict) -> bool:
    chassis_ok = all(ch["registered"] and (ch["stopped"] or all(ch["processes"].values()))
                     for ch in status["chassis"].values())
    central_ok = all(s.startswith("running") for s in status["central"].values())
    return status["phase"] == "up" and chassis_ok and central_ok and bool(status["central"])


def run(args: argparse.Namespace) -> int:
    directory = getattr(args, "dir", None) or os.environ.get("YCLOUD_LAB_DIR") or DEFAULT_DIR
    lab = Lab(getattr(args, "shape", None) or DEFAULT_SHAPE, directory)
    out = sys.stdout.write
    if args.action == "up":
        res = lab.up()
        if res["already"]:
            out(f"lab {res['lab_id']} already up in {lab.dir}\n")
        else:
            out(f"lab {res['lab_id']} up in {lab.dir} ({res['seconds']}s)\n")
        out(f"export OVN_NB_DB={lab.nb_remote}\nexport OVN_SB_DB={lab.sb_remote}\n")
    elif args.action == "down":
        done = lab.down()
        out(f"stopped {len(done['processes'])} processes, deleted "
            f"{len(done['namespaces'])} namespaces, removed {len(done['files'])} entries "
            f"of {lab.dir}\n")
    elif args.action == "status":
        status = lab.status()
        if args.json:
            out(json.dumps(status, indent=2) + "\n")
        else:
            _print_status(status)
        return 0 if _healthy(status) else 1
    elif args.action == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            cmd = [os.environ.get("SHELL", "/bin/bash")]
        argv = in_ns(lab.namespace_of(args.target), cmd)
        env = lab.exec_env(args.target)  # a chassis: its OVS_/OVN_ RUNDIR etc.
        if env is None:
            os.execvp(argv[0], argv)
        os.execvpe(argv[0], argv, env)
    elif args.action == "stop-chassis":
        lab.stop_chassis(args.name)
        out(f"chassis {args.name} stopped (ovn-controller, ovs-vswitchd)\n")
    elif args.action == "start-chassis":
        lab.start_chassis(args.name)
        out(f"chassis {args.name} started\n")
    elif args.action == "recirc":
        count = measure(lab, args.client, args.proto, args.ip, args.port)
        out(count.describe() + "\n")
        return 0 if count.answered and count.within_budget else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if os.geteuid() != 0:
        sys.stderr.write("scripts/lab: needs root (network namespaces, veth, OVS)\n")
        return 2
    try:
        return run(args)
    except LabError as exc:
        sys.stderr.write(f"scripts/lab {args.action}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
