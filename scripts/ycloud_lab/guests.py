"""Vnics of type vm/baremetal on the lab: guests the lab plays, as a hypervisor would. A
guest is a namespace `<lab id>-p-<port>` with `eth0`, a veth whose chassis end is the Vnic's
spec.hostInterface, which the node agent plugs into br-int (the lab never does). The guest's
MAC, addresses, MTU and default route are its NB port's (cniread.py), standing in for the
guest's DHCP.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from topology import naming
from ycloud_lab.netns import add_address, create_ns, delete_ns, route, sanitize, veth
from ycloud_lab.proc import LabError
from ycloud_lab.state import LabState, PortBinding

if TYPE_CHECKING:
    from ycloud_lab.lab import Lab


def pod_namespace(st: LabState, port: str) -> str:
    """The /run/netns name of a pod's (or guest's) network namespace."""
    return st.ns(f"p-{sanitize(port)}")


def wait_installed(lab: Lab, name: str, interface: str, timeout: float = 30.0) -> None:
    """Until chassis `name`'s ovn-controller installed `interface` (the agent plugged it)."""
    ch = lab.chassis(lab.store.load(), name)
    deadline = time.monotonic() + timeout
    while interface not in ch.installed_interfaces():
        if time.monotonic() > deadline:
            raise LabError(f"chassis {name}: {interface} not plugged by the node agent and "
                           f"installed by ovn-controller within {timeout:.0f}s; see "
                           f"{ch.dir / 'node-agent.log'}")
        time.sleep(0.2)


def sync_guests(lab: Lab, vnics: list[dict[str, Any]], st: LabState, errors: list[str],
                ) -> list[tuple[str, str]]:
    """Guests for the Vnics bound to lab chassis (none for Vnics gone or readdressed);
    returns (chassis, host interface) of those made now. Failures go to `errors`."""
    from ycloud_lab.cniread import read_ports

    specs, _ = read_ports(st.nb_remote, lab.shape)
    want = {}
    for vnic in vnics:
        spec, md = vnic.get("spec") or {}, vnic["metadata"]
        port = naming.vnic_port(md.get("namespace") or "default", md["name"])
        if spec.get("node") in st.chassis and spec.get("hostInterface") and port in specs:
            want[port] = (spec["hostInterface"], specs[port])
    for port, b in list(st.ports.items()):
        if b.role == naming.ROLE_VNIC and (port not in want or
                                           want[port][1].fingerprint != b.fingerprint):
            unplug_guest(lab, st, b)
    made = []
    for port, (host_if, spec) in want.items():
        if port in st.ports:
            continue
        ns = pod_namespace(st, port)
        st.record_ns(ns)
        ch = lab.chassis(st, spec.node)
        what = f"guest of Vnic port {port} on {spec.node}"
        try:
            create_ns(ns)
            veth(ch.ns, host_if, ns, "eth0", mtu=spec.mtu, address_b=spec.mac, what=what)
            for ip in spec.ips:
                add_address(ns, "eth0", ip, what=what)
            for gw in {spec.gateway_for(ip) for ip in spec.ips} - {None}:
                route(ns, "default", str(gw), "eth0", what=what)
        except LabError as exc:
            errors.append(str(exc))
            continue
        st.ports[port] = PortBinding(port=port, role=naming.ROLE_VNIC, chassis=spec.node,
                                     namespace=ns, ifname=host_if,
                                     fingerprint=spec.fingerprint, mac=spec.mac,
                                     ips=list(spec.ips))
        made.append((spec.node, host_if))
    return made


def unplug_guest(lab: Lab, st: LabState, b: PortBinding) -> None:
    """The guest goes (its servers, its namespace; the veth with it)."""
    lab.stop_processes(st, namespace=b.namespace)
    delete_ns(b.namespace)
    st.forget_ns(b.namespace)
    st.ports.pop(b.port, None)
