"""Rebuild IPAM after a restart, before anything new is allocated.

Sources, in order: the annotations the controller wrote on pods (the CNI contract, durable in
the API server) and the addresses of the ports it owns in NB (durable in NB; the only source
in manifests mode). An address restored for one owner is never given to another.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import structlog

from topology import naming
from topology.nb import NbClient
from ycloud_controller.ipam import Ipam
from ycloud_controller.network import NetworkModel

log = structlog.get_logger(__name__)


def _ips(value: str) -> tuple:
    out = []
    for part in value.replace(",", " ").split():
        try:
            out.append(ipaddress.ip_address(part))
        except ValueError:
            continue
    return tuple(out)


def from_annotations(ipam: Ipam, pods: list[dict[str, Any]]) -> int:
    restored = 0
    for pod in pods:
        md = pod.get("metadata") or {}
        ann = md.get("annotations") or {}
        subnet, ips, mac = ann.get(naming.ANN_SWITCH), ann.get(naming.ANN_IP), \
            ann.get(naming.ANN_MAC)
        if not (subnet and ips and mac):
            continue
        owner = f"Pod/{md.get('namespace')}/{md.get('name')}"
        if ipam.restore(owner, subnet, _ips(ips), mac):
            restored += 1
        else:
            log.warning("annotated addresses conflict, pod will get new ones", owner=owner,
                        ip=ips, subnet=subnet)
    return restored


def nb_ports(nb: NbClient) -> list[tuple[str, str, str, str]]:
    """(owner kind, owner, switch, addresses) of the workload ports we own in NB."""
    def collect() -> list[tuple[str, str, str, str]]:
        out = []
        index = nb.index
        for uuids in index.rows.get("Logical_Switch_Port", {}).values():
            row = index.row("Logical_Switch_Port", uuids[0])
            ids = row.external_ids
            if ids.get(naming.ROLE) not in (naming.ROLE_POD, naming.ROLE_VNIC, naming.ROLE_NODE):
                continue
            if row.addresses:
                out.append((ids.get(naming.KIND, ""), ids.get(naming.OWNER, ""),
                            ids.get(naming.SUBNET, ""), row.addresses[0]))
        return out
    return nb.read(collect)


def restore_ipam(ipam: Ipam, informers: dict[str, Any], nb: NbClient | None,
                 net: NetworkModel) -> None:
    pods = informers["Pod"].store.list()
    restored = from_annotations(ipam, pods)
    from_nb = 0
    if nb is not None:
        for kind, owner, switch, addresses in nb_ports(nb):
            informer = informers.get(kind)
            if informer is None or informer.store.get(owner) is None:
                continue  # owner gone: its port is garbage-collected, its addresses are free
            mac, *rest = addresses.split()
            if switch in net.subnets and ipam.restore(f"{kind}/{owner}", switch,
                                                      _ips(" ".join(rest)), mac):
                from_nb += 1
    log.info("ipam restored", from_annotations=restored, from_nb=from_nb)
