"""The lab CNI: plugs the NB ports the controller wrote (see cniread for the contract).

pod / vnic: a namespace per port (`<lab id>-p-<port>`), a veth whose chassis end is on br-int
with external_ids:iface-id=<port>; the pod end `eth0` gets the MAC, every IP, the MTU, a default
route via the gateway (per address family) and tx offload off.
node: the chassis namespace is the node; an OVS internal port on br-int gets the MAC/IPs and
routes to ycloud.io/routes (or the shape's service CIDR) via the gateway.
Ports that vanish from NB (or change) are unplugged (and replugged); pod namespaces go with them.
Ports on a chassis stopped by stop-chassis are left alone until it is started again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from topology import naming
from ycloud_lab.chassis import INTEGRATION_BRIDGE, Chassis
from ycloud_lab.cniread import PortSpec, read_ports
from ycloud_lab.netns import (
    add_address,
    create_ns,
    delete_ns,
    drop_link,
    ifname,
    route,
    sanitize,
    veth,
    wait_link,
)
from ycloud_lab.proc import LabError, run
from ycloud_lab.state import LabState, PortBinding

if TYPE_CHECKING:
    from ycloud_lab.lab import Lab

log = logging.getLogger("ycloud_lab")
POD_IF = "eth0"


def pod_namespace(st: LabState, port: str) -> str:
    return st.ns(f"p-{sanitize(port)}")


class Cni:
    def __init__(self, lab: Lab):
        self.lab = lab
        self._warned: set[tuple[str, str]] = set()

    def _warn_once(self, port: str, reason: str) -> None:
        if (port, reason) not in self._warned:
            self._warned.add((port, reason))
            log.warning("cni: port %s not plugged: %s", port, reason)

    # -- sync -----------------------------------------------------------------------------
    def sync(self, *, wait: bool = True, strict: bool = True, timeout: float = 30.0,
             ) -> dict[str, str]:
        """Make the plugged ports equal NB; returns {port: namespace}.

        wait: block until ovn-controller marked every newly plugged port ovn-installed.
        strict: raise LabError naming every port that failed (after handling all others)."""
        lab = self.lab
        errors: list[str] = []
        with lab.store.locked():
            st = lab.store.load()
            if st.phase != "up":
                raise LabError(f"lab in {lab.dir} is {st.phase}, not up")
            specs, skipped = read_ports(st.nb_remote, lab.shape)
            for port, reason in skipped.items():
                self._warn_once(port, reason)
            for port, binding in list(st.ports.items()):
                spec = specs.get(port)
                if spec is not None and spec.fingerprint == binding.fingerprint:
                    continue
                if self._chassis_stopped(st, binding.chassis):
                    continue
                try:
                    self.unplug(st, binding)
                except LabError as exc:
                    errors.append(str(exc))
                lab.store.save(st)
            plugged: list[PortBinding] = []
            for port, spec in specs.items():
                if port in st.ports:
                    continue
                if spec.node not in st.chassis:
                    self._warn_once(port, f"node {spec.node!r} is not a lab chassis")
                    continue
                if self._chassis_stopped(st, spec.node):
                    continue
                try:
                    st.ports[port] = self.plug(st, spec)
                    plugged.append(st.ports[port])
                except LabError as exc:
                    errors.append(str(exc))
                lab.store.save(st)
            if wait and plugged:
                errors += self.wait_installed(st, plugged, timeout)
                if not errors:
                    lab.wait_hv(timeout)  # remote chassis know where the new ports live
            mapping = {p: b.namespace for p, b in sorted(st.ports.items())}
        if errors and strict:
            raise LabError("cni: " + "\n  ".join(errors))
        for err in errors:
            log.error("%s", err)
        return mapping

    @staticmethod
    def _chassis_stopped(st: LabState, name: str) -> bool:
        ch = st.chassis.get(name)
        return ch is not None and ch.stopped

    def watch(self, interval: float = 0.5) -> None:
        """Sync until the lab is torn down (its state file disappears)."""
        log.info("cni: watching NB every %.1fs", interval)
        while self.lab.store.exists():
            try:
                before = set(self.lab.store.load().ports)
                after = set(self.sync(wait=False, strict=False))
                for port in sorted(after - before):
                    log.info("cni: plugged %s", port)
                for port in sorted(before - after):
                    log.info("cni: unplugged %s", port)
            except LabError as exc:
                if not self.lab.store.exists():
                    break
                log.error("%s", exc)
            time.sleep(interval)
        log.info("cni: lab state gone, stopping")

    # -- plug / unplug --------------------------------------------------------------------
    def plug(self, st: LabState, spec: PortSpec) -> PortBinding:
        ch = self.lab.chassis(st, spec.node)
        if spec.role == naming.ROLE_NODE:
            binding = self._binding(spec, ch.ns, ifname("n", spec.port))
            try:
                self._plug_node(ch, spec, binding.ifname)
            except LabError:
                self._try_unplug(st, binding)
                raise
        else:
            binding = self._binding(spec, pod_namespace(st, spec.port), ifname("p", spec.port))
            st.record_ns(binding.namespace)
            self.lab.store.save(st)
            try:
                self._plug_pod(ch, spec, binding)
            except LabError:
                self._try_unplug(st, binding)
                raise
        log.info("cni: %s %s plugged on %s in %s (%s)", spec.role, spec.port, spec.node,
                 binding.namespace, " ".join(spec.ips))
        return binding

    @staticmethod
    def _binding(spec: PortSpec, ns: str, ifn: str) -> PortBinding:
        return PortBinding(port=spec.port, role=spec.role, chassis=spec.node, namespace=ns,
                           ifname=ifn, fingerprint=spec.fingerprint, mac=spec.mac,
                           ips=list(spec.ips))

    def _try_unplug(self, st: LabState, binding: PortBinding) -> None:
        try:
            self.unplug(st, binding)
        except LabError as exc:
            log.warning("cni: cleanup of half-plugged %s failed: %s", binding.port, exc)

    def _plug_pod(self, ch: Chassis, spec: PortSpec, b: PortBinding) -> None:
        what = f"cni: port {spec.port} on chassis {ch.name}"
        create_ns(b.namespace)
        drop_link(ch.ns, b.ifname)  # left by an earlier plug whose namespace is still going
        veth(ch.ns, b.ifname, b.namespace, POD_IF, mtu=spec.mtu, address_b=spec.mac, what=what)
        for ip in spec.ips:
            add_address(b.namespace, POD_IF, ip, what=what)
        for gateway in {spec.gateway_for(ip) for ip in spec.ips} - {None}:
            route(b.namespace, "default", str(gateway), POD_IF, what=what)
        ch.vsctl("--may-exist", "add-port", INTEGRATION_BRIDGE, b.ifname, "--",
                 "set", "Interface", b.ifname, f'external_ids:iface-id="{spec.port}"',
                 wait=ch.vswitchd_alive())

    def _plug_node(self, ch: Chassis, spec: PortSpec, ifn: str) -> None:
        what = f"cni: node port {spec.port} on chassis {ch.name}"
        ch.vsctl("--may-exist", "add-port", INTEGRATION_BRIDGE, ifn, "--",
                 "set", "Interface", ifn, "type=internal", f'mac="{spec.mac}"',
                 f"mtu_request={spec.mtu}", f'external_ids:iface-id="{spec.port}"', wait=True)
        self.configure_node_port(ch, spec.ips, spec, ifn, what)

    def configure_node_port(self, ch: Chassis, ips: list[str] | tuple[str, ...],
                            spec: PortSpec | None, ifn: str, what: str) -> None:
        """Addresses and routes of a node port's tap (again after vswitchd restarts)."""
        wait_link(ch.ns, ifn, what=what, logfile=str(ch.logfile("ovs-vswitchd")))
        run(["ip", "-n", ch.ns, "link", "set", ifn, "up"], what=what)
        for ip in ips:
            add_address(ch.ns, ifn, ip, what=what)
        if spec is None:
            return
        for cidr in spec.routes:
            gateway = spec.gateway_for(cidr)
            if gateway:
                route(ch.ns, cidr, gateway, ifn, what=what)
            else:
                log.warning("%s: no gateway of %s's family; route skipped", what, cidr)

    def unplug(self, st: LabState, b: PortBinding) -> None:
        ch = self.lab.chassis(st, b.chassis)
        ch.vsctl("--if-exists", "del-port", INTEGRATION_BRIDGE, b.ifname,
                 wait=ch.vswitchd_alive())
        if b.role != naming.ROLE_NODE:
            self.lab.stop_processes(st, namespace=b.namespace)
            drop_link(ch.ns, b.ifname)
            delete_ns(b.namespace)
            st.forget_ns(b.namespace)
        st.ports.pop(b.port, None)
        log.info("cni: %s %s unplugged from %s", b.role, b.port, b.chassis)

    # -- readiness ------------------------------------------------------------------------
    def wait_installed(self, st: LabState, bindings: list[PortBinding],
                       timeout: float = 30.0) -> list[str]:
        """Wait until ovn-controller set ovn-installed on each port; returns failures."""
        pending: dict[str, set[str]] = {}
        for b in bindings:
            pending.setdefault(b.chassis, set()).add(b.ifname)
        deadline = time.monotonic() + timeout
        while pending:
            for name in list(pending):
                ch = self.lab.chassis(st, name)
                pending[name] -= ch.installed_interfaces()
                if not pending[name]:
                    del pending[name]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        by_if = {b.ifname: b.port for b in bindings}
        return [f"port {by_if[i]} on chassis {name}: not ovn-installed after {timeout:.0f}s "
                f"(is the LSP in SB? see {self.lab.chassis(st, name).logfile('ovn-controller')})"
                for name, ifs in pending.items() for i in sorted(ifs)]
