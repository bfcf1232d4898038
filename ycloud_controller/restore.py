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
from topology.nbsync.client import NbClient
from ycloud_controller import keys
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
        subnet, ips, mac = ann.get(keys.ANN_SWITCH), ann.get(keys.ANN_IP), \
            ann.get(keys.ANN_MAC)
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


def nb_rows(nb: NbClient, table: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """external_ids and some columns of the rows we own in one table."""
    def collect() -> list[dict[str, Any]]:
        out = []
        for uuids in nb.index.rows.get(table, {}).values():
            row = nb.index.row(table, uuids[0])
            out.append({"ids": dict(row.external_ids),
                        **{c: getattr(row, c) for c in columns}})
        return out
    return nb.read(collect)


def restore_eips_and_internal(ctx: Any, informers: dict[str, Any], nb: NbClient | None,
                              net: NetworkModel) -> None:
    """EIP pools' allocations (uplinks, service EIPs) and transit/link addresses."""
    from ycloud_controller.reconcilers.eip_state import EipHolder
    from ycloud_controller.reconcilers.eippool import pool_subnet
    for pool in net.pools.values():
        ctx.eips.set_subnet(pool_subnet(pool))
    services = informers["Service"].store
    for svc in services.list():
        md = svc.get("metadata") or {}
        ingress = (((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])
        for pool in net.pools.values():
            for entry in ingress:
                ip = _ips(str(entry.get("ip", "")))
                if ip and pool.contains(ip[0]):
                    holder = EipHolder.service(f"{md.get('namespace')}/{md.get('name')}")
                    ctx.eips.restore(str(holder), pool.name, ip, "")
    if nb is None:
        return
    for lrp in nb_rows(nb, "Logical_Router_Port", ("name", "networks")):
        ids, name = lrp["ids"], lrp["name"]
        pool, nets = ids.get(naming.POOL), lrp["networks"]
        if not pool or not nets or pool not in net.pools:
            continue
        address, _, _ = nets[0].partition("/")
        if name == naming.eip_gateway_transit_port(pool):
            ctx.internal.restore_block(pool, nets[0])
        elif name == naming.eip_gateway_uplink(pool) and \
                net.pools[pool].uplink_ip is None:
            ctx.eips.restore(str(EipHolder.uplink(pool)), pool, _ips(address), "")
    for lrp in nb_rows(nb, "Logical_Router_Port", ("name", "networks")):
        ids, name, nets = lrp["ids"], lrp["name"], lrp["networks"]
        pool, vpc = ids.get(naming.POOL), ids.get(naming.VPC)
        if not pool or not vpc or not nets or pool not in net.pools:
            continue
        if name == naming.vpc_transit_port(vpc, pool):
            ctx.internal.restore_transit(pool, f"Vpc/{vpc}", nets[0].partition("/")[0])
        elif name == naming.svcgw_link_port(pool, vpc):
            ctx.internal.restore_link(pool, vpc, nets[0])
    for route in nb_rows(nb, "Logical_Router_Static_Route", ()):
        ids = route["ids"]
        eip, pool = ids.get(naming.EIP), ids.get(naming.POOL)
        holder = EipHolder(ids.get(naming.KIND, ""), ids.get(naming.OWNER, ""))
        if eip and pool in net.pools and holder.is_service and \
                services.get(holder.key) is not None:
            ctx.eips.restore(str(holder), pool, _ips(eip), "")


def restore_cluster_ips(ctx: Any, informers: dict[str, Any], nb: NbClient) -> int:
    """Manifests mode: the ClusterIPs each Service's Load_Balancer rows hold in NB."""
    restored = 0
    services = informers["Service"].store
    for key, vips in nb.read(_service_vips, nb):
        if services.get(key) is None:
            continue
        for ip in {vip.rpartition(":")[0].strip("[]") for vip in vips}:  # one per port
            restored += ctx.cluster_ips.restore(key, ip)
    return restored


def _service_vips(nb: NbClient) -> list[tuple[str, list[str]]]:
    """(Service key, VIPs) of each Load_Balancer a Service owns (the owner from the index,
    not a copy of every row's external_ids: every full sync reads them all)."""
    index, out = nb.index, []
    for uuids in index.rows.get("Load_Balancer", {}).values():
        owner = index.meta[uuids[0]].owner
        if owner is not None and owner.kind == "Service":
            out.append((owner.name, list(index.value("Load_Balancer", uuids[0], "vips") or ())))
    return out


def restore_ipam(ctx: Any, informers: dict[str, Any], nb: NbClient | None,
                 net: NetworkModel) -> None:
    ipam: Ipam = ctx.ipam
    restore_eips_and_internal(ctx, informers, nb, net)
    if nb is not None and ctx.cluster_ips is not None:
        log.info("cluster ips restored", from_nb=restore_cluster_ips(ctx, informers, nb))
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
    # annotations are user-writable: they only fill what NB did not already assign
    restored = from_annotations(ipam, informers["Pod"].store.list())
    log.info("ipam restored", from_annotations=restored, from_nb=from_nb)
