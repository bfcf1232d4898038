"""ycloud-controller command line: run, sync --once, render, inspect."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

import structlog

from topology.nbsync.client import NbClient, SslConfig
from ycloud_controller import config as config_mod
from ycloud_controller import logs
from ycloud_controller.kube.throttle import DEFAULT_BURST, DEFAULT_QPS
from ycloud_controller.source import Source, open_source

log = structlog.get_logger(__name__)

EPILOG = """\
environment: OVN_NB_DB / OVN_SB_DB give the default --ovn-nb-db / --ovn-sb-db.
exit codes: 0 converged (or served until stopped), 1 not converged or failed, 2 usage error.
"""


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("OVN")
    g.add_argument("--ovn-nb-db", default=os.environ.get("OVN_NB_DB"),
                   help="NB remote: unix:PATH, tcp:IP:PORT, ssl:IP:PORT, or a comma-separated "
                        "list of RAFT members (default $OVN_NB_DB)")
    g.add_argument("--ovn-sb-db", default=os.environ.get("OVN_SB_DB"),
                   help="SB remote, read for health-check status (default $OVN_SB_DB)")
    g.add_argument("--ovn-ssl-key", help="private key for ssl: remotes")
    g.add_argument("--ovn-ssl-cert", help="certificate for ssl: remotes")
    g.add_argument("--ovn-ssl-ca", help="CA certificate that must sign the server's certificate")
    g.add_argument("--bump-nb-cfg", action="store_true", default=None,
                   help="every NB transaction also increments NB_Global.nb_cfg, as "
                        "ovn-nbctl --wait=hv does, so that ovn-northd (NB_Global.sb_cfg) and "
                        "every ovn-controller (NB_Global.hv_cfg) acknowledge each commit; "
                        "off by default (it gives them that sequence work)")
    g = p.add_argument_group("Kubernetes source (one of)")
    g.add_argument("--manifests", metavar="DIR",
                   help="read objects from the YAML files of DIR instead of a cluster")
    g.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, "
                                        "then in-cluster)")
    g.add_argument("--context", help="kubeconfig context")
    g.add_argument("--in-cluster", action="store_true",
                   help="use the pod's service account only")
    g.add_argument("--kube-api-qps", type=float, default=None, metavar="QPS",
                   help="client-side limit of the controller's Kubernetes writes, requests "
                   f"per second (default {DEFAULT_QPS:g}; 0: no limit)")
    g.add_argument("--kube-api-burst", type=int, default=None, metavar="N",
                   help=f"writes allowed at once above that rate (default {DEFAULT_BURST})")
    g = p.add_argument_group("general")
    g.add_argument("--config", help="controller config file (YAML: defaultVpc, joinSubnet, "
                                    "defaultSubnet, serviceCidr, internalCidr, mtu)")
    g.add_argument("--log-format", choices=("json", "console"),
                   help="log format (default: console on a terminal, json otherwise)")
    g.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"), help="log level")
    g.add_argument("--batch-size", type=int, default=500,
                   help="most queued objects reconciled into one NB transaction (default 500)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ycloud-controller", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="OVN northbound SDN controller for Kubernetes: VPCs, subnets, services "
                    "and EIPs as OVN logical routers, switches and load balancers.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="watch the cluster (or a manifests directory) forever")
    _common(run)
    run.add_argument("--http-port", type=int, default=8080,
                     help="port for /metrics, /healthz, /readyz (default 8080; 0 disables)")
    run.add_argument("--leader-elect", action="store_true",
                     help="elect a leader on a coordination.k8s.io Lease; only it writes NB")
    run.add_argument("--lease-name", default="ycloud-controller", help="Lease name")
    run.add_argument("--lease-namespace", default=os.environ.get("POD_NAMESPACE",
                                                                 "ycloud-system"),
                     help="Lease namespace (default $POD_NAMESPACE or ycloud-system)")
    run.add_argument("--identity", default=os.environ.get("POD_NAME", socket.gethostname()),
                     help="this replica's identity in the Lease (default $POD_NAME, hostname)")
    run.add_argument("--lease-duration", type=float, default=15.0,
                     help="seconds a leader's lease lasts without renewal (default 15)")
    run.add_argument("--resync", type=float, default=600.0,
                     help="seconds between full resyncs that repair drift; each first "
                          "reloads our NB rows from the server (default 600)")
    sync = sub.add_parser("sync", help="converge NB to the source once and exit")
    _common(sync)
    sync.add_argument("--once", action="store_true", required=True,
                      help="required: converge once, exit 0 when converged")
    sync.add_argument("--strict", action="store_true",
                      help="also exit 1 when some objects are invalid")
    sync.add_argument("--timeout", type=float, default=300.0,
                      help="seconds to wait for convergence (default 300)")
    render = sub.add_parser("render", help="print the NB changes a sync would make; write "
                                           "nothing")
    _common(render)
    render.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default text)")
    inspect = sub.add_parser("inspect", help="show the NB rows owned by one object")
    inspect.add_argument("target", help="KIND/[NAMESPACE/]NAME, e.g. service/default/nginx, "
                                        "vpc/vpc1, pod/ns1/web-1")
    inspect.add_argument("--ovn-nb-db", default=os.environ.get("OVN_NB_DB"),
                         help="NB remote (default $OVN_NB_DB)")
    inspect.add_argument("--ovn-ssl-key")
    inspect.add_argument("--ovn-ssl-cert")
    inspect.add_argument("--ovn-ssl-ca")
    inspect.add_argument("--format", choices=("text", "json"), default="text")
    inspect.add_argument("--log-format", choices=("json", "console"), help="log format")
    inspect.add_argument("--log-level", default="warning", help="log level")
    sub.add_parser("node", add_help=False,
                   help="run the node agent of ycloud-cni (ycloud-controller node --help)")
    sub.add_parser("install-cni", add_help=False,
                   help="install the ycloud-cni plugin and its conflist on the host (the "
                        "DaemonSet's init container)")
    return parser


def _ssl(args: argparse.Namespace) -> SslConfig | None:
    """SSL files, used only when a remote is ssl: (the Deployment always passes the flags and
    mounts the Secret optionally, so files may be absent with tcp: or unix: remotes)."""
    remotes = [r.strip() for r in (args.ovn_nb_db or "").split(",")]
    if not any(r.startswith("ssl:") for r in remotes):
        return None
    parts = (args.ovn_ssl_key, args.ovn_ssl_cert, args.ovn_ssl_ca)
    if not all(parts):
        raise config_mod.ConfigError("ssl: remotes need --ovn-ssl-key, --ovn-ssl-cert and "
                                     "--ovn-ssl-ca")
    missing = [p for p in parts if not os.path.isfile(p)]
    if missing:
        raise config_mod.ConfigError(f"ssl: remote but {missing[0]} does not exist (is the "
                                     "ycloud-ovn-ssl Secret mounted?)")
    return SslConfig(*parts)


def _nb_settings(args: argparse.Namespace) -> tuple[float, SslConfig | None]:
    """The NB client's timeout and SSL files."""
    if not args.ovn_nb_db:
        raise config_mod.ConfigError("no NB remote: pass --ovn-nb-db or set OVN_NB_DB")
    # `sync --timeout T` bounds everything it waits for, the NB connection included
    return min(60.0, getattr(args, "timeout", 60.0)), _ssl(args)


def _nb(args: argparse.Namespace) -> NbClient:
    timeout, ssl = _nb_settings(args)
    return NbClient(args.ovn_nb_db, ssl=ssl, timeout=timeout).start()


def _check_sb(args: argparse.Namespace) -> None:
    """The SB monitor (health-check status, gateway failover) is optional."""
    if not args.ovn_sb_db:
        log.warning("no --ovn-sb-db: NetworkProbe status stays Unknown")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["node"]:
        from ycloud_controller.node.cli import main as node_main
        return node_main(argv[1:])
    if argv[:1] == ["install-cni"]:
        from ycloud_controller.node.install import main as install_main
        return install_main(argv[1:])
    args = build_parser().parse_args(argv)
    logs.configure(getattr(args, "log_format", None), getattr(args, "log_level", "info"))
    try:
        if args.command == "inspect":
            from ycloud_controller.inspection import inspect_command
            return inspect_command(args, _nb(args))
        cfg = config_mod.load(args.config, nb_remote=args.ovn_nb_db, sb_remote=args.ovn_sb_db,
                              batch_size=args.batch_size,
                              kube_api_qps=getattr(args, "kube_api_qps", None),
                              kube_api_burst=getattr(args, "kube_api_burst", None),
                              resync_seconds=getattr(args, "resync", None),
                              bump_nb_cfg=args.bump_nb_cfg)
        if args.command == "run":
            return _run(args, cfg)
        return _once(args, cfg)
    except (config_mod.ConfigError, OSError, RuntimeError) as exc:
        sys.stderr.write(f"ycloud-controller: {exc}\n")
        return 1


def _once(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from ycloud_controller.assemble import assemble
    render = args.command == "render"
    source = open_source(args)
    nb_timeout, ssl = _nb_settings(args)
    _check_sb(args)
    parts = assemble(cfg, source.backend, nb_timeout=nb_timeout, ssl=ssl,
                     emulate=source.emulate, plan_only=render,
                     write_kube=source.emulate or not render,
                     object_ages=source.manifests is None)
    ctl = parts.ctl
    try:
        if not parts.start(wait=60):  # the informers list while our NB rows load
            sys.stderr.write("ycloud-controller: the source did not sync within 60s\n")
            return 1
        ctl.full_sync(ctl.settle())  # what the settle pass settled, the full sync takes
        drained = ctl.drain(timeout=getattr(args, "timeout", 300.0))
        if render:
            return _print_plan(ctl.plan_all(), args.format)
        return _report(ctl, drained, args.strict)
    finally:
        parts.stop()
        source.close()


def _report(ctl, drained: bool, strict: bool) -> int:  # noqa: ANN001
    ctl.writer.flush(timeout=30)
    final = ctl.verify()  # converged means: nothing was left to write
    for key, msg in sorted(final.invalid.items()):
        sys.stderr.write(f"invalid {key[0]} {key[1]}: {msg}\n")
    for key, msg in sorted({**final.refused, **final.retrying}.items()):
        sys.stderr.write(f"not converged {key[0]} {key[1]}: {msg}\n")
    ok = drained and final.converged and final.changes == 0 and not (strict and final.invalid)
    sys.stdout.write(f"{'converged' if ok else 'NOT converged'}: {final.objects} objects, "
                     f"{len(final.invalid)} invalid, {len(final.refused)} refused by NB\n")
    return 0 if ok else 1


def _print_plan(plan, fmt: str) -> int:  # noqa: ANN001
    changes = plan.describe()
    if fmt == "json":
        sys.stdout.write(json.dumps(changes, indent=2, sort_keys=True) + "\n")
        return 0
    if not changes:
        sys.stdout.write("no changes: NB matches the source\n")
    for c in changes:
        if c["op"] in ("insert", "update"):
            cols = ", ".join(f"{k}={v}" for k, v in sorted(c["columns"].items()) if v not in
                             ("", [], {}))
            sys.stdout.write(f"{c['op']:7} {c['table']} {c['key']} ({c['owner']}) {cols}\n")
        elif c["op"] == "delete":
            sys.stdout.write(f"delete  {c['table']} {c['key']} ({c['owner']})\n")
        elif c["op"] == "error":
            sys.stdout.write(f"error   {c['owner']}: {c['message']}\n")
        else:
            sys.stdout.write(f"{c['op']:7} {c['table']} {c['key']}.{c['column']} += "
                             f"{c['member']}\n" if c["op"] == "link" else
                             f"{c['op']:7} {c['table']} {c['key']}.{c['column']} -= "
                             f"{c['member']}\n")
    return 0


def _run(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from ycloud_controller.assemble import assemble
    from ycloud_controller.health_server import serve
    from ycloud_controller.kube.leader import LeaderElector
    source: Source = open_source(args)
    nb_timeout, ssl = _nb_settings(args)
    elector = None
    if args.leader_elect:
        if source.emulate:
            raise config_mod.ConfigError("--leader-elect needs a cluster, not --manifests")
        elector = LeaderElector(source.backend, name=args.lease_name,
                                namespace=args.lease_namespace, identity=args.identity,
                                lease_duration=args.lease_duration,
                                renew_deadline=args.lease_duration * 2 / 3,
                                retry_period=max(0.5, args.lease_duration / 7.5))
    _check_sb(args)
    parts = assemble(cfg, source.backend, nb_timeout=nb_timeout, ssl=ssl,
                     emulate=source.emulate,
                     is_leader=(lambda: elector.is_leader) if elector else None,
                     object_ages=source.manifests is None)
    ctl = parts.ctl
    stop = ctl.stop_event
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.http_port:
        serve(args.http_port, healthy=lambda: not stop.is_set(), ready=ctl.ready)
    try:
        parts.start(wait=None)
        if elector is not None:
            threading.Thread(target=elector.run, args=(stop,), name="leader",
                             daemon=True).start()
        source.start(stop)
        log.info("controller running", nb=cfg.nb_remote, leader_election=bool(elector),
                 identity=args.identity)
        ctl.wait_synced(timeout=300)
        ctl.run()
    finally:
        ctl.shutdown()
        if elector is not None:
            elector.release()  # before NB is let go: the next leader need not wait
        parts.stop()
        source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
