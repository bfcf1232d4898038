"""The lab proves itself with NB rows written by hand (through ovn-nbctl, with the external_ids
the controller writes) and the API objects the node agents plug from (with the annotations the
controller writes; pods made by containerd through ycloud-cni), and real packets."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from ycloud_lab import Lab, LabError
from ycloud_lab.chassis import Chassis
from ycloud_lab.cluster import Cluster
from ycloud_lab.lab import SOURCE_PORTS
from ycloud_lab.netns import list_ns
from ycloud_lab.scenarios import wait_until

from topology import naming
from ycloud_controller import keys
from ycloud_controller.kube import resources as res

from .conftest import SHAPE, NbRows, lab_skip_reason

pytestmark = pytest.mark.lab


def test_up_is_idempotent(lab: Lab) -> None:
    assert lab.up()["already"] is True
    status = lab.status()
    assert all(ch["registered"] for ch in status["chassis"].values())
    assert all(all(ch["processes"].values()) for ch in status["chassis"].values())


def test_pods_on_two_chassis_talk_over_geneve(lab: Lab, nb: NbRows) -> None:
    sw, r = nb.switch("lt-sw-a"), nb.router("lt-r-a")
    nb.connect(r, sw, "0a:00:00:aa:00:01", "10.201.0.1/24")
    common = {"gateway": "10.201.0.1", "cidr": "10.201.0.0/24"}
    nb.port(sw, "a1.lab", mac="0a:00:00:aa:00:11", ips=["10.201.0.11"], node="node1", **common)
    a2 = nb.port(sw, naming.vnic_port("lab", "a2"), mac="0a:00:00:aa:00:12",
                 ips=["10.201.0.12"], node="node2", role=naming.ROLE_VNIC, **common)
    ports = lab.cni_sync()
    assert ports["a1.lab"] == lab.namespace_of("a1.lab") != ports[a2]
    lab.start_server(a2, "a2", "both", 8080)
    lab.start_server("a1.lab", "a1", "tcp", 9090)
    for proto in ("tcp", "udp"):
        reply = lab.request("a1.lab", proto, "10.201.0.12", 8080)
        assert reply.ok, reply
        assert (reply.server, reply.source_ip) == ("a2", "10.201.0.11")
    back = lab.request(a2, "tcp", "10.201.0.11", 9090)
    assert back.ok and back.server == "a1", back
    replies = lab.requests("a1.lab", "tcp", "10.201.0.12", 8080, count=3)
    assert len({r.source for r in replies}) == 3 and all(r.ok for r in replies)
    # from the lab's own source ports, one after another (Lab.source_ports), as seen by both
    sports = [int((r.local or ":0").rsplit(":", 1)[1]) for r in replies]
    assert sports == list(range(sports[0], sports[0] + 3)), sports
    assert SOURCE_PORTS[0] <= sports[0] < SOURCE_PORTS[1], sports
    assert [r.source for r in replies] == [f"10.201.0.11:{p}" for p in sports], replies
    assert lab.request("a1.lab", "tcp", "10.201.0.12", 8081).error == "refused"
    # the router port answers: the pod's default route works
    assert lab.exec("a1.lab", "ping", "-c1", "-W2", "10.201.0.1").returncode == 0
    with lab.open_connection("a1.lab", "10.201.0.12", 8080) as conn:
        first, second = conn.send(), conn.send()
    assert first.ok and first.source == second.source, (first, second)


def test_node_port_reaches_pods_through_join_switch(lab: Lab, nb: NbRows) -> None:
    r = nb.router("lt-r-n")
    join, pods = nb.switch("lt-join"), nb.switch("lt-sw-n")
    nb.connect(r, join, "0a:00:00:bb:00:01", "100.64.9.1/24")
    nb.connect(r, pods, "0a:00:00:bb:01:01", "10.202.0.1/24")
    nb.port(join, naming.node_port("node1"), mac="0a:00:00:bb:00:11", ips=["100.64.9.11"],
            node="node1", gateway="100.64.9.1", cidr="100.64.9.0/24", role=naming.ROLE_NODE,
            routes=["10.202.0.0/24"])
    nb.port(pods, "n2.lab", mac="0a:00:00:bb:01:12", ips=["10.202.0.12"], node="node2",
            gateway="10.202.0.1", cidr="10.202.0.0/24")
    ports = lab.cni_sync()
    assert ports[naming.node_port("node1")] == lab.namespace_of("node1")
    lab.start_server("n2.lab", "n2", "tcp", 8080)
    reply = lab.request("node1", "tcp", "10.202.0.12", 8080)
    assert reply.ok and reply.source_ip == "100.64.9.11", reply


def _gateway_topology(nb: NbRows, lab: Lab) -> None:
    """Gateway router on gw1: external switch with a localnet port on the provider network,
    an inside switch with a pod on node1, and a dnat_and_snat 172.18.0.61 -> the pod."""
    provider = lab.shape.provider
    ext, inside = nb.switch("lt-ext"), nb.switch("lt-in")
    nb.localnet(ext, provider)
    gr = nb.router("lt-gr", chassis="gw1")
    nb.connect(gr, ext, "0a:00:00:cc:00:01", "172.18.0.60/24")
    nb.connect(gr, inside, "0a:00:00:cc:01:01", "10.203.0.1/24")
    nb.nbctl("lr-route-add", gr, "0.0.0.0/0", lab.shape.external_gateway)
    nb.nbctl("lr-nat-add", gr, "dnat_and_snat", "172.18.0.61", "10.203.0.13")
    nb.port(inside, "g3.lab", mac="0a:00:00:cc:01:13", ips=["10.203.0.13"], node="node1",
            gateway="10.203.0.1", cidr="10.203.0.0/24")
    lab.cni_sync()
    lab.start_server("g3.lab", "g3", "both", 8080)


def test_external_host_reaches_pod_through_gateway_router(lab: Lab, nb: NbRows) -> None:
    _gateway_topology(nb, lab)
    ext1, ext2 = lab.external_hosts[:2]
    assert lab.exec(ext1.name, "ping", "-c1", "-W2", "172.18.0.60").returncode == 0
    for host, proto in ((ext1, "tcp"), (ext2, "udp")):
        reply = lab.request(host.name, proto, "172.18.0.61", 8080)
        assert reply.ok and reply.server == "g3" and reply.source_ip == host.ip, reply
    # a static route on the external host towards the router's external IP
    lab.add_route(ext1.name, "10.203.0.0/24", "172.18.0.60")
    try:
        reply = lab.request(ext1.name, "tcp", "10.203.0.13", 8080)
        assert reply.ok and reply.source_ip == ext1.ip, reply
    finally:
        lab.exec(ext1.name, "ip", "route", "del", "10.203.0.0/24")
    # egress: the pod reaches an external host, SNATed to its dnat_and_snat address
    lab.start_server(ext2.name, "ext2", "tcp", 7070)
    reply = lab.request("g3.lab", "tcp", ext2.ip, 7070)
    assert reply.ok and reply.source_ip == "172.18.0.61", reply


def test_gateway_chassis_stop_and_start(lab: Lab, nb: NbRows) -> None:
    _gateway_topology(nb, lab)
    ext1 = lab.external_hosts[0].name
    assert lab.request(ext1, "tcp", "172.18.0.61", 8080).ok
    lab.stop_chassis("gw1")
    try:
        down = lab.request(ext1, "tcp", "172.18.0.61", 8080, timeout=1)
        assert not down.ok and down.error in ("timeout", "unreachable"), down
        assert lab.status()["chassis"]["gw1"]["stopped"] is True
    finally:
        lab.start_chassis("gw1")
    reply = lab.request(ext1, "tcp", "172.18.0.61", 8080, timeout=3)
    assert reply.ok and reply.server == "g3", reply


def _abort_vswitchd(lab: Lab, chassis: str) -> None:
    """The chassis' ovs-vswitchd gone, its log ending as OVS 3.1's conntrack abort ends it."""
    rec = next(p for p in lab.store.load().processes if p.name == f"{chassis}/ovs-vswitchd")
    os.kill(rec.current_pid(), 9)
    wait_until(lambda: not rec.alive(), 10, f"{chassis}'s ovs-vswitchd gone")
    with open(rec.logfile, "a") as f:
        f.write("2026-12-06T00:00:00.000Z|00042|util(pmd-c00/id:7)|EMER|lib/conntrack.c:"
                "1063: assertion conn->conn_type == CT_CONN_TYPE_DEFAULT failed in "
                "conn_update_state()\n")


def test_a_chassis_whose_vswitchd_died_is_started_again(lab: Lab, nb: NbRows) -> None:
    """What the lab tier does after each test (conftest._revive_dead_chassis): a chassis
    with a dead daemon is stopped and started again, and carries traffic again; and what a
    test that tolerates an abort of ovs-vswitchd does (Lab.revive_after_datapath_abort): the
    same, for such an abort only."""
    _gateway_topology(nb, lab)
    ext1 = lab.external_hosts[0].name
    assert lab.revive_chassis() == {}  # nothing dead: nothing restarted
    rec = next(p for p in lab.store.load().processes if p.name == "gw1/ovs-vswitchd")
    os.kill(rec.current_pid(), 9)
    try:
        wait_until(lambda: not rec.alive(), 10, "gw1's ovs-vswitchd gone")
        # a kill is not an abort of OVS's: the tests that tolerate those leave it dead
        assert lab.revive_after_datapath_abort() == {}
        assert "gw1/ovs-vswitchd" in lab.unhealthy(lab.store.load())
        last = Path(rec.logfile).read_text().strip().splitlines()[-1]
        dead = lab.revive_chassis()  # each dead daemon with the end of its log
        assert list(dead) == ["gw1/ovs-vswitchd"] and dead["gw1/ovs-vswitchd"].endswith(last)
        _abort_vswitchd(lab, "gw1")  # as ovs-vswitchd dies of it: its log is the witness read
        dead = lab.revive_after_datapath_abort()
        assert list(dead) == ["gw1/ovs-vswitchd"] and "conntrack.c:1063" in dead[
            "gw1/ovs-vswitchd"]
    finally:
        lab.revive_chassis()
    assert "gw1/ovs-vswitchd" not in lab.unhealthy(lab.store.load())
    reply = lab.request(ext1, "tcp", "172.18.0.61", 8080, timeout=3)
    assert reply.ok and reply.server == "g3", reply


def test_ha_gateway_port_fails_over_to_second_gateway(lab: Lab, nb: NbRows) -> None:
    """A distributed gateway port on gw1 (priority 20) and gw2 (10): when gw1 stops, BFD moves
    it to gw2, which announces the NAT address (nat-addresses=router) on the provider network."""
    ext, inside = nb.switch("lt-ha-ext"), nb.switch("lt-ha-in")
    nb.localnet(ext, lab.shape.provider)
    r = nb.router("lt-ha-r")
    nb.connect(r, ext, "0a:00:00:ff:00:01", "172.18.0.80/24")
    nb.nbctl("lsp-set-options", f"{ext}-{r}", f"router-port={r}-{ext}", "nat-addresses=router")
    nb.nbctl("lrp-set-gateway-chassis", f"{r}-{ext}", "gw1", "20", "--",
             "lrp-set-gateway-chassis", f"{r}-{ext}", "gw2", "10")
    nb.connect(r, inside, "0a:00:00:ff:01:01", "10.206.0.1/24")
    nb.nbctl("lr-nat-add", r, "dnat_and_snat", "172.18.0.81", "10.206.0.13")
    nb.port(inside, "ha3.lab", mac="0a:00:00:ff:01:13", ips=["10.206.0.13"], node="node2",
            gateway="10.206.0.1", cidr="10.206.0.0/24")
    lab.cni_sync()
    lab.start_server("ha3.lab", "ha3", "tcp", 8080)
    ext1 = lab.external_hosts[0].name
    assert lab.request(ext1, "tcp", "172.18.0.81", 8080, timeout=3).ok
    lab.stop_chassis("gw1")
    try:
        deadline = time.monotonic() + 20
        reply = lab.request(ext1, "tcp", "172.18.0.81", 8080, timeout=1)
        while not reply.ok and time.monotonic() < deadline:
            reply = lab.request(ext1, "tcp", "172.18.0.81", 8080, timeout=1)
        assert reply.ok and reply.server == "ha3", f"no failover to gw2: {reply}"
    finally:
        lab.start_chassis("gw1")
    deadline = time.monotonic() + 20
    reply = lab.request(ext1, "tcp", "172.18.0.81", 8080, timeout=1)
    while not reply.ok and time.monotonic() < deadline:
        reply = lab.request(ext1, "tcp", "172.18.0.81", 8080, timeout=1)
    assert reply.ok, f"no failback to gw1: {reply}"


def test_cli_status_and_exec(lab: Lab) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "lab"
    status = subprocess.run([str(script), "status", "--json", "--dir", str(lab.dir)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert set(json.loads(status.stdout)["chassis"]) == {c.name for c in lab.shape.chassis}
    ping = subprocess.run([str(script), "exec", "--dir", str(lab.dir), "node1", "--",
                           "ping", "-c1", "-W2", lab.shape.chassis_named("gw2").tunnel_ip],
                          capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_unplug_when_pod_is_deleted(lab: Lab, nb: NbRows) -> None:
    sw = nb.switch("lt-sw-u")
    nb.port(sw, "u1.lab", mac="0a:00:00:dd:00:11", ips=["10.204.0.11"], node="node2",
            gateway="10.204.0.1", cidr="10.204.0.0/24", mtu=1300)
    ns = lab.cni_sync()["u1.lab"]
    assert "mtu 1300" in lab.exec("u1.lab", "ip", "link", "show", "eth0", check=True).stdout
    lab.start_server("u1.lab", "u1", "tcp", 8080)
    nb.api.delete(res.PODS, "u1", "lab")  # the runtime removes its sandbox: CNI DEL
    assert "u1.lab" not in lab.cni_sync()
    assert ns not in list_ns()
    assert not [p for p in lab.status()["processes"] if p == "server/u1"]


# -- down leaves nothing behind (its own small lab) -----------------------------------------------
def _small_shape(tmp_path: Path) -> Path:
    data = yaml.safe_load(SHAPE.read_text())
    data["chassis"] = [c for c in data["chassis"] if c["name"] in ("node1", "gw1")]
    data["external"]["hosts"] = data["external"]["hosts"][:1]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _links(ns: str | None = None) -> set[str]:
    from ycloud_lab.proc import run

    cmd = ["ip", "-br", "link"] if ns is None else ["ip", "-n", ns, "-br", "link"]
    return {line.split()[0].split("@")[0] for line in run(cmd).stdout.splitlines()}


def _lab_links(lab: Lab) -> set[str]:
    """Names of the links inside the lab's namespaces (none may show up on the host)."""
    return {name for ns in list_ns() if ns.startswith(lab.lab_id) for name in _links(ns)}


def _our_processes(directory: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(directory) in cmd:
                found.append(f"{proc.name}: {cmd}")
    return found


def _assert_nothing_left(lab: Lab, links_before: set[str], lab_links: set[str]) -> None:
    """Other sessions may add host links meanwhile: only the lab's link names count."""
    assert [ns for ns in list_ns() if ns.startswith(lab.lab_id)] == []
    assert (_links() - links_before) & lab_links == set()
    assert _our_processes(lab.dir) == []
    assert not lab.dir.exists()


def test_down_leaves_nothing(tmp_path: Path) -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    links_before = _links()
    # a short directory: containerd's sockets (<chassis dir>/containerd/containerd.sock.ttrpc)
    # must fit a unix socket path
    short = Path(tempfile.mkdtemp(prefix="ysl"))
    small = Lab(_small_shape(tmp_path), short / "lab")
    small.up()
    cluster = None
    try:
        cluster = small.cluster = Cluster(small).start()
        small.nbctl("ls-add", "lt-down")
        small.nbctl("lsp-add", "lt-down", "d1.lab", "--", "lsp-set-addresses", "d1.lab",
                    "0a:00:00:ee:00:11 10.205.0.11", "--", "set", "Logical_Switch_Port",
                    "d1.lab", f'external_ids:"{naming.MANAGED_BY}"="{naming.MANAGED_BY_VALUE}"',
                    f'external_ids:"{naming.ROLE}"="{naming.ROLE_POD}"',
                    f'external_ids:"{naming.NODE}"="node1"',
                    f'external_ids:"{naming.CIDR}"="10.205.0.0/24"')
        cluster.api.create(res.PODS, {"metadata": {"name": "d1", "namespace": "lab",
                                                   "annotations": {
            keys.ANN_IP: "10.205.0.11", keys.ANN_MAC: "0a:00:00:ee:00:11",
            keys.ANN_GATEWAY: "10.205.0.1", keys.ANN_CIDR: "10.205.0.0/24"}},
            "spec": {"nodeName": "node1", "containers": []}})
        small.cni_sync()
        small.start_server("d1.lab", "d1", "tcp", 8080)
        small.open_connection("d1.lab", "127.0.0.1", 8080)
        assert _our_processes(small.dir)
        lab_links = _lab_links(small)
        assert {"eth0", "ext0", "br-phy", "br-int", "br-ul", "br-ext"} <= lab_links
    finally:
        small.down()  # alone: the pods, runtimes and node agents go with the lab
        if cluster is not None and cluster.fake is not None:
            cluster.fake.stop()
        short.rmdir()
    _assert_nothing_left(small, links_before, lab_links)


def test_down_after_failed_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    links_before = _links()

    def broken(self: Chassis) -> None:
        raise LabError(f"chassis {self.name}: injected failure")

    monkeypatch.setattr(Chassis, "start_controller", broken)
    small = Lab(_small_shape(tmp_path), tmp_path / "failed-lab")
    try:
        with pytest.raises(LabError, match="injected failure"):
            small.up()
        assert small.store.load().phase == "failed"
        assert _our_processes(small.dir)  # ovsdb-server and ovs-vswitchd were running
        lab_links = _lab_links(small)
    finally:
        small.down()
    _assert_nothing_left(small, links_before, lab_links)
    assert os.path.exists(tmp_path)


_CALLS: list[str] = []


@pytest.mark.filterwarnings("ignore:.*failed while ovs-vswitchd aborted")
def test_a_test_failing_while_vswitchd_aborted_runs_once_more(lab: Lab) -> None:
    """conftest.pytest_runtest_call: this test's first call aborts gw1's ovs-vswitchd (as OVS
    logs it) and fails; the hook starts gw1 again and calls the test once more, which finds
    gw1 running. Without the hook the first failure would stand."""
    _CALLS.append("call")
    if len(_CALLS) == 1:
        _abort_vswitchd(lab, "gw1")
        raise AssertionError("the first call fails while gw1's ovs-vswitchd aborted")
    assert len(_CALLS) == 2
    assert "gw1/ovs-vswitchd" not in lab.unhealthy(lab.store.load())
