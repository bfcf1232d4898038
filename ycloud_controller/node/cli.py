"""`ycloud-controller node`: the node agent's command line (see the README, "Node agent and
CNI plugin", for every flag)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence

import structlog

from ycloud_controller import logs
from ycloud_controller.node.agent import AgentConfig, NodeAgent
from ycloud_controller.node.chassis import ChassisSettings
from ycloud_controller.node.cni import CniSettings
from ycloud_controller.node.vfpool import parse_pairs

log = structlog.get_logger(__name__)


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise argparse.ArgumentTypeError(f"{item!r} is not PROVIDER=BRIDGE")
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ycloud-controller node",
        description="The node agent of ycloud-cni: plugs pods into the local OVS for the CNI "
                    "plugin, sets up the node's chassis and its node interface.")
    p.add_argument("--node", default=os.environ.get("NODE_NAME", socket.gethostname()),
                   help="this node's name: the chassis system-id, pods of spec.nodeName "
                        "(default $NODE_NAME, then the hostname)")
    g = p.add_argument_group("Kubernetes")
    g.add_argument("--kubeconfig", help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, "
                                        "then in-cluster)")
    g.add_argument("--context", help="kubeconfig context")
    g.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    g = p.add_argument_group("OVS and OVN")
    g.add_argument("--ovs-db", default=os.environ.get("OVS_DB",
                                                      "unix:/var/run/openvswitch/db.sock"),
                   help="the local ovsdb-server (default $OVS_DB or "
                        "unix:/var/run/openvswitch/db.sock)")
    g.add_argument("--ovn-sb-db", default=os.environ.get("OVN_SB_DB"),
                   help="SB remote written as ovn-remote for ovn-controller (default "
                        "$OVN_SB_DB; unset: left as it is)")
    g.add_argument("--encap-type", default="geneve", help="ovn-encap-type (default geneve)")
    g.add_argument("--encap-ip", default=os.environ.get("ENCAP_IP"),
                   help="ovn-encap-ip (default $ENCAP_IP, then the Node's InternalIP)")
    g.add_argument("--datapath-type", choices=("system", "netdev"),
                   help="datapath of br-int and provider bridges (ovn-bridge-datapath-type); "
                        "netdev (userspace) also turns tx checksum offload off on veths")
    g.add_argument("--bridge", default="br-int", help="integration bridge (default br-int)")
    g.add_argument("--provider-bridge", action="append", default=[], metavar="PROVIDER=BRIDGE",
                   help="bridge of an EipPool's providerNetwork on its gateway nodes "
                        "(default br-<provider>); repeatable")
    g.add_argument("--hw-offload", action="store_true",
                   help="other_config:hw-offload=true (DPU/SmartNIC); with --vf-pool, pods "
                        "get VFs instead of veths")
    g.add_argument("--vf-pool", action="append", default=[], metavar="VF:REP[,VF:REP]",
                   help="VF netdev and representor pairs (needs --hw-offload); repeatable")
    g = p.add_argument_group("CNI")
    g.add_argument("--socket", default="/run/ycloud/cni.sock",
                   help="unix socket the ycloud-cni plugin calls (default /run/ycloud/cni.sock)")
    g.add_argument("--annotation-timeout", type=float, default=30.0,
                   help="seconds an ADD waits for the controller's pod annotations (default "
                        "30; then error code 11, try again later)")
    g.add_argument("--ovn-installed-timeout", type=float, default=60.0,
                   help="seconds an ADD waits for ovn-controller's ovn-installed (default 60; "
                        "0: answer without waiting)")
    g.add_argument("--node-interface", default="ycloud0",
                   help="name of the node port's internal interface (default ycloud0; '' "
                        "disables the node port)")
    g = p.add_argument_group("general")
    g.add_argument("--http-port", type=int, default=10666,
                   help="port of /metrics and /healthz (default 10666; 0 disables)")
    g.add_argument("--resync", type=float, default=60.0,
                   help="seconds between full passes (chassis, node port, Vnics, garbage "
                        "collection) (default 60)")
    g.add_argument("--log-format", choices=("json", "console"), help="log format")
    g.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"), help="log level")
    return p


def config_of(args: argparse.Namespace) -> AgentConfig:
    pairs = parse_pairs(args.vf_pool)
    if pairs and not args.hw_offload:
        raise ValueError("--vf-pool needs --hw-offload")
    return AgentConfig(
        chassis=ChassisSettings(
            node=args.node, sb_remote=args.ovn_sb_db, encap_type=args.encap_type,
            encap_ip=args.encap_ip, datapath_type=args.datapath_type,
            hw_offload=args.hw_offload, provider_bridges=_pairs(args.provider_bridge),
            bridge=args.bridge),
        cni=CniSettings(bridge=args.bridge, annotation_timeout=args.annotation_timeout,
                        ovn_installed_timeout=args.ovn_installed_timeout,
                        userspace_datapath=args.datapath_type == "netdev"),
        ovs_db=args.ovs_db, socket=args.socket, node_interface=args.node_interface,
        vf_pairs=pairs, resync=args.resync)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    try:
        cfg = config_of(args)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        sys.stderr.write(f"ycloud-controller node: {exc}\n")
        return 2
    from ycloud_controller.kube.apibackend import ApiBackend
    from ycloud_controller.kube.client import make_api_client
    client = make_api_client(args.kubeconfig, args.in_cluster, args.context)
    agent = NodeAgent(cfg, ApiBackend(client))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.stop_event.set())
    if args.http_port:
        from ycloud_controller.health_server import serve
        serve(args.http_port, healthy=agent.healthy, ready=agent.ready.is_set)
    try:
        agent.start()
    except (RuntimeError, OSError) as exc:
        sys.stderr.write(f"ycloud-controller node: {exc}\n")
        agent.stop()
        return 1
    log.info("node_agent_running", node=cfg.node, ovs=cfg.ovs_db)
    agent.stop_event.wait()
    agent.stop()
    return 0
