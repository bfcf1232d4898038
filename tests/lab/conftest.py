"""Lab tier fixtures: one lab (tests/lab/shape.yaml) per session, torn down at the end, with
the product's node half on every chassis (a Kubernetes API, FakeKube, and on each chassis the
node agent, the installed ycloud-cni and a containerd: see ycloud_lab.cluster), and the
examples (manifests/examples) loaded into that API and served by an in-process controller
(`examples`).

The lab lives in a pytest tmp dir, or in $YCLOUD_LAB_DIR; YCLOUD_LAB_KEEP=1 leaves it running
after the session (for debugging with `scripts/lab status/exec --dir ...`). Tests are skipped
with the reason when not root or when OVS/OVN binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ycloud_lab import HeldConnection, Lab, Reply, Server
from ycloud_lab.checkrun import Resolver, Row, run_check
from ycloud_lab.cluster import Cluster, load_manifests
from ycloud_lab.inprocess import InProcessController
from ycloud_lab.netns import ifname
from ycloud_lab.ovsdb import rows
from ycloud_lab.scenarios import CHECKS_BY_ID, EXAMPLES, ServerSpec, prepare_examples, wait_until

from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.backend import MemoryBackend

ROOT = Path(__file__).resolve().parents[2]
SHAPE = Path(__file__).resolve().parent / "shape.yaml"
TOOLS = ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl",
         "ovn-controller", "ovn-northd", "ovn-nbctl", "ovn-sbctl", "ip", "ethtool", "ping")


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, veth, OVS)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"lab tests need {', '.join(missing)} (apt-get install ovn-central ovn-host " \
               f"openvswitch-switch iproute2 ethtool iputils-ping)"
    if not Path("/usr/share/openvswitch/vswitch.ovsschema").exists():
        return "lab tests need /usr/share/openvswitch/vswitch.ovsschema (openvswitch-common)"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on hand-written NB rows (the lab self-tests: some reuse the examples' EIP
    addresses) run before the tests that hand NB to the controller on the examples for the
    rest of the session (the `examples` fixture). Stable: the order is otherwise kept."""
    items[:] = sorted(items, key=lambda i: "examples" in getattr(i, "fixturenames", ()))


TRAFFIC_PROCESSES = ("server/", "hold/")  # ycloud_lab.workload's, not the chassis daemons
# Chassis_Template_Var is not wiped: a chassis' row deleted and inserted again makes its
# ovn-controller 23.03.1 exit (README, Known limits); the next controller adopts it
WIPE_TABLES = ("Logical_Switch", "Logical_Router", "Load_Balancer", "Load_Balancer_Group",
               "HA_Chassis_Group")


def wipe_nb(lab: Lab) -> None:
    """An empty NB, no pods, no traffic process left (the external hosts' servers
    too) and no neighbour the external hosts learnt (an EIP of the last session answered by
    a router that is gone): a reused lab ($YCLOUD_LAB_DIR) starts clean."""
    for table in WIPE_TABLES:
        lab.nbctl("--all", "destroy", table)
    lab.cni_sync()
    for host in lab.external_hosts:
        lab.exec(host.name, "ip", "neigh", "flush", "all", check=True)
    with lab.store.locked():
        st = lab.store.load()
        for rec in [p for p in st.processes if p.name.startswith(TRAFFIC_PROCESSES)]:
            rec.stop()
            st.processes.remove(rec)
        lab.store.save(st)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    directory = os.environ.get("YCLOUD_LAB_DIR") or tmp_path_factory.mktemp("lab") / "lab"
    the_lab = Lab(SHAPE, directory)
    try:
        already = the_lab.up()["already"]
        if already:
            for name, ch in the_lab.status()["chassis"].items():
                if ch["stopped"]:
                    the_lab.start_chassis(name)
        the_lab.cluster = Cluster(the_lab).start()
        if already:
            wipe_nb(the_lab)
    except BaseException:
        if the_lab.cluster is not None:
            the_lab.cluster.stop()
        the_lab.down()
        raise
    yield the_lab
    the_lab.cluster.stop()
    the_lab.cluster = None
    if os.environ.get("YCLOUD_LAB_KEEP") != "1":
        the_lab.down()


class Examples:
    """manifests/examples served for real: the examples in FakeKube (real HTTP list/watch), the
    controller in-process on its store (with SB), on every chassis the node agent, the
    installed ycloud-cni and a containerd whose RunPodSandbox made every pod, the scenario
    servers running.

    Tests that change something (objects, servers, chassis) put it back before they end, so
    the next test finds the examples as they were."""

    def __init__(self, lab: Lab, controller: InProcessController,
                 servers: dict[ServerSpec, Server]):
        self.lab = lab
        self.controller = controller
        self.servers = servers
        self.resolver = Resolver(lab)

    @property
    def backend(self) -> MemoryBackend:
        """create / patch / delete objects the controller watches."""
        return self.controller.backend

    def check(self, check_id: str, **kwargs: object) -> Row:
        return run_check(self.lab, CHECKS_BY_ID[check_id], self.resolver, **kwargs)

    def spec(self, name: str, port: int) -> ServerSpec:
        return next(s for s in self.servers if s.name == name and s.port == port)

    def stop_server(self, name: str, port: int) -> ServerSpec:
        spec = self.spec(name, port)
        assert self.lab.stop_server(self.servers[spec]), f"server {name}:{port} was not running"
        return spec

    def start_server(self, spec: ServerSpec) -> None:
        self.servers[spec] = self.lab.start_server(spec.target, spec.name, spec.proto,
                                                   spec.port)


@pytest.fixture(scope="session")
def examples(lab: Lab) -> Iterator[Examples]:
    """The examples converged and served, once per session (see Examples)."""
    assert lab.cluster is not None
    load_manifests(lab.cluster.store, EXAMPLES)
    controller = InProcessController(lab.nb_remote, lab.sb_remote, store=lab.cluster.store)
    try:
        controller.start()
        controller.wait_idle()
        servers = prepare_examples(lab)
    except BaseException:
        controller.stop()
        raise
    yield Examples(lab, controller, servers)
    controller.stop()


class NbRows:
    """NB rows written by hand through ovn-nbctl, with the external_ids the controller writes,
    and for each port the API object the node agent plugs from (a Pod, a Vnic, a Node) with
    the annotations the controller writes; removed (and unplugged) at the end of the test."""

    def __init__(self, lab: Lab):
        assert lab.cluster is not None
        self.lab = lab
        self.api = lab.cluster.api
        self.switches: list[str] = []
        self.routers: list[str] = []
        self.objects: list[tuple[Any, str, str | None]] = []  # (resource, name, namespace)

    def nbctl(self, *args: str) -> str:
        return self.lab.nbctl(*args)

    def switch(self, name: str) -> str:
        self.switches.append(name)
        self.nbctl("ls-add", name)
        return name

    def router(self, name: str, chassis: str | None = None) -> str:
        self.routers.append(name)
        self.nbctl("lr-add", name)
        if chassis:
            self.nbctl("set", "Logical_Router", name, f"options:chassis={chassis}")
        return name

    def connect(self, router: str, switch: str, mac: str, cidr: str) -> None:
        """Router port <router>-<switch> with cidr (gateway/len) and its peer switch port."""
        lrp, lsp = f"{router}-{switch}", f"{switch}-{router}"
        self.nbctl("lrp-add", router, lrp, mac, cidr, "--", "lsp-add", switch, lsp, "--",
                   "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp, "router",
                   "--", "lsp-set-options", lsp, f"router-port={lrp}")

    def localnet(self, switch: str, network: str) -> None:
        port = f"ln-{switch}"
        self.nbctl("lsp-add", switch, port, "--", "lsp-set-type", port, "localnet", "--",
                   "lsp-set-addresses", port, "unknown", "--",
                   "lsp-set-options", port, f"network_name={network}")

    def port(self, switch: str, name: str, *, mac: str, ips: list[str], node: str,
             gateway: str, cidr: str, role: str = naming.ROLE_POD,
             routes: list[str] | None = None, mtu: int | None = None) -> str:
        """A managed LSP with the external_ids the controller writes, and the object the node
        agent plugs from: a Pod (name `<pod>.<namespace>`), a Vnic (`vnic.<name>.<ns>`,
        its guest behind spec.hostInterface) or the Node (`node-<node>`, its node port),
        annotated as the controller annotates them."""
        ids = {naming.MANAGED_BY: naming.MANAGED_BY_VALUE, naming.ROLE: role,
               naming.NODE: node, naming.GATEWAY: gateway, naming.CIDR: cidr,
               naming.KIND: "Pod", naming.OWNER: f"lab/{name}"}
        if routes:
            ids[naming.ROUTES] = ",".join(routes)
        if mtu:
            ids[naming.MTU] = str(mtu)
        self.nbctl("lsp-add", switch, name, "--",
                   "lsp-set-addresses", name, " ".join([mac, *ips]), "--",
                   "set", "Logical_Switch_Port", name,
                   *(f'external_ids:"{k}"="{v}"' for k, v in ids.items()))
        ann = {keys.ANN_IP: ",".join(ips), keys.ANN_MAC: mac, keys.ANN_GATEWAY: gateway,
               keys.ANN_CIDR: cidr, keys.ANN_SWITCH: switch}
        if mtu:
            ann[keys.ANN_MTU] = str(mtu)
        if role == naming.ROLE_NODE:
            ann[keys.ANN_ROUTES] = ",".join(routes or [])
            self._create(res.NODES, {"metadata": {"name": node, "annotations": ann}})
        elif role == naming.ROLE_VNIC:
            prefix, vnic, namespace = name.split(".", 2)
            assert prefix + "." + vnic + "." + namespace == naming.vnic_port(namespace, vnic)
            self._create(res.VNICS, {"metadata": {"name": vnic, "namespace": namespace},
                                     "spec": {"subnet": switch, "node": node, "type": "vm",
                                              "hostInterface": ifname("v", name)}})
        else:
            pod, namespace = name.rsplit(".", 1)
            self._create(res.PODS, {"metadata": {"name": pod, "namespace": namespace,
                                                 "annotations": ann},
                                    "spec": {"nodeName": node, "containers": []}})
        return name

    def _create(self, resource: Any, obj: dict) -> None:
        md = obj["metadata"]
        self.api.create(resource, obj)
        self.objects.append((resource, md["name"], md.get("namespace")))

    def cleanup(self) -> None:
        for resource, name, namespace in reversed(self.objects):
            if self.api.get(resource, name, namespace) is not None:
                self.api.delete(resource, name, namespace)
        for router in reversed(self.routers):
            self.nbctl("--if-exists", "lr-del", router)
        for switch in reversed(self.switches):
            self.nbctl("--if-exists", "ls-del", switch)
        self.lab.cni_sync()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A lab test that failed while an ovs-vswitchd aborted (an EMER line ends its log: OVS
    3.1's userspace conntrack asserts in conn_update_state() now and then, in about one full
    run of the tier in three) runs once more, after that chassis is started again, with a
    warning carrying the end of the log (Lab.revive_after_datapath_abort). The controller
    writes NB rows, never a flow: the abort is OVS's. Any other failure, and a second
    failure, stands."""
    try:
        return (yield)
    except (Exception, pytest.fail.Exception):
        lab = getattr(item, "funcargs", {}).get("lab")
        revived = lab.revive_after_datapath_abort() if isinstance(lab, Lab) else {}
        if not revived:
            raise
        warnings.warn(f"{item.nodeid} failed while ovs-vswitchd aborted; run once more after "
                      f"its chassis was started again: {_died(revived)}", stacklevel=1)
        item.runtest()
        return None


@pytest.fixture(autouse=True)
def _revive_dead_chassis(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test of the lab: a chassis whose daemon died during it (OVS 3.1's userspace
    conntrack can abort ovs-vswitchd) is started again, with a warning naming the test, so
    that one crash does not fail every test after it."""
    yield
    if "lab" not in request.fixturenames:
        return
    dead = request.getfixturevalue("lab").revive_chassis()
    if dead:
        warnings.warn(f"lab processes died during {request.node.nodeid}: {_died(dead)}; "
                      "their chassis were started again", stacklevel=1)


def _died(dead: dict[str, str]) -> str:
    """Lab.revive_chassis's answer for a warning: each dead process and its log's end."""
    return "; ".join(f"{name} (its log ended: {words})" for name, words in dead.items())


@pytest.fixture
def nb(lab: Lab) -> Iterator[NbRows]:
    rows = NbRows(lab)
    yield rows
    rows.cleanup()


# -- helpers for tests on the examples ----------------------------------------------------------
def service(name: str, namespace: str, cluster_ip: str, selector: dict[str, str], *,
            port: int = 80, target_port: int = 8080, proto: str = "TCP",
            **spec: object) -> dict:
    """A v1 Service with one port."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "selector": selector,
                     "ports": [{"name": "p", "protocol": proto, "port": port,
                                "targetPort": target_port}], **spec}}


def lb_vips(lab: Lab) -> dict[str, list[str]]:
    """Every NB Load_Balancer VIP 'ip:port' -> its backend IPs, sorted (several LBs may carry
    one VIP, e.g. an EIP on the VPC's LB group and on its router: their backends merge)."""
    out: dict[str, set[str]] = {}
    for r in rows("ovn-nbctl", lab.nb_remote, "--columns=vips", "list", "Load_Balancer"):
        for vip, backends in r["vips"].items():
            out.setdefault(vip, set()).update(b.rsplit(":", 1)[0] for b in backends.split(",")
                                              if b)
    return {vip: sorted(ips) for vip, ips in out.items()}


def wait_vip(lab: Lab, vip: str, predicate: Callable[[list[str] | None], bool], what: str,
             timeout: float = 20.0) -> None:
    """Until predicate(backend IPs of vip, or None when no LB has it) holds in NB, then until
    every chassis installed it (--wait=hv)."""
    wait_until(lambda: predicate(lb_vips(lab).get(vip)), timeout, what)
    lab.wait_hv()


def wait_deleted(examples: Examples, kind: str, name: str, namespace: str | None) -> None:
    backend = examples.backend
    resource = InProcessController.resource(kind)
    backend.delete(resource, name, namespace)
    wait_until(lambda: backend.get(resource, name, namespace) is None, 10,
               f"{kind} {namespace}/{name} deleted")


def chassis_of(lab: Lab, port: str) -> str:
    return lab.store.load().ports[port].chassis


# -- restarts: rows that must keep their _uuid, traffic that must not fail ---------------------
TABLES = ("Load_Balancer", "Load_Balancer_Group", "Logical_Switch", "Logical_Router",
          "Logical_Switch_Port", "Logical_Router_Port", "NAT", "Logical_Router_Static_Route")


def owned_uuids(lab: Lab, table: str) -> dict[str, str]:
    """ycloud.io/key -> _uuid of the rows of `table` the controller owns (Load_Balancer_Group
    has no external_ids in OVN 23.03: the controller's groups are known by name)."""
    if table == "Load_Balancer_Group":
        return {r["name"]: r["_uuid"] for r in rows(
            "ovn-nbctl", lab.nb_remote, "--columns=_uuid,name", "list", table)
            if naming.is_our_lb_group(r["name"])}
    out = {}
    for r in rows("ovn-nbctl", lab.nb_remote, "--columns=_uuid,external_ids", "list", table):
        ids = r["external_ids"]
        if ids.get(naming.MANAGED_BY) == naming.MANAGED_BY_VALUE:
            out[ids.get(naming.KEY, r["_uuid"])] = r["_uuid"]
    return out


class Traffic:
    """Sends on held connections and opens new ones in a loop, in a thread, until stopped."""

    def __init__(self, lab: Lab, held: dict[str, HeldConnection],
                 fresh: dict[str, Callable[[], Reply]]):
        self.lab = lab
        self.held = held
        self.fresh = fresh
        self.log: list[tuple[str, str, Reply]] = []  # (phase, what, reply)
        self.phase = "before"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            phase = self.phase
            for name, conn in self.held.items():
                self.log.append((phase, f"held {name}", conn.send()))
            for name, request in self.fresh.items():
                self.log.append((phase, f"new {name}", request()))

    def rounds(self, phase: str) -> int:
        return sum(1 for p, what, _ in self.log if p == phase and what.startswith("held"))

    def during(self, phase: str, rounds: int = 3) -> None:
        """Switch to `phase` and wait until `rounds` rounds ran in it."""
        self.phase = phase
        wait_until(lambda: self.rounds(phase) >= rounds * len(self.held), 60,
                   f"{rounds} rounds of traffic while {phase}")

    def failed(self) -> list[tuple[str, str, str]]:
        return [(p, w, str(r)) for p, w, r in self.log if not r.ok]


def restart_under(traffic: Traffic, controller: InProcessController, rounds: int = 3,
                  before_stop: Callable[[], object] | None = None) -> None:
    """Stop the controller and start a new one on the same store and NB (a process restart)
    while `traffic` runs: `rounds` rounds before, while stopped and after the new one is
    idle; `before_stop()` is called after the rounds before. The traffic thread is stopped at
    the end."""
    traffic.thread.start()
    try:
        traffic.during("before", rounds)
        if before_stop is not None:
            before_stop()
        traffic.phase = "stopped"
        controller.stop()
        traffic.during("stopped", rounds)
        traffic.phase = "starting"
        controller.start()
        controller.wait_idle()
        traffic.during("after", rounds)
    finally:
        traffic.stop.set()
        traffic.thread.join(timeout=30)
