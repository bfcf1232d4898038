"""Who chose a pod's address decides what happens when it no longer fits (issue 22): the
controller marks the addresses it chose (annotation ycloud.io/ip_allocated) and re-allocates
them; a user's request (ycloud.io/ip_address not so marked) is never replaced, and refused
when it does not fit. A running controller (its own annotations in its store) and a fresh
process (the manifest file's annotations, IPAM restored from NB) decide the same."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from tests.unit import factories as f
from tests.unit.cluster import Cluster
from topology.model import LogicalSwitchPort, Owner
from ycloud_controller import keys
from ycloud_controller.config import Config
from ycloud_controller.kube.patch import merge_patch
from ycloud_controller.reconcilers.base import EventEffect, Outcome, PatchEffect, StatusEffect
from ycloud_controller.reconcilers.pod import reconcile_pod
from ycloud_controller.reconcilers.vnic import reconcile_vnic

POD = Owner("Pod", "t/p")


def port(out: Outcome) -> LogicalSwitchPort:
    (row,) = out.rows[POD] or []
    assert isinstance(row, LogicalSwitchPort)
    return row


def patch(out: Outcome) -> dict[str, Any] | None:
    found = [e.patch["metadata"]["annotations"] for e in out.effects
             if isinstance(e, PatchEffect)]
    return found[0] if found else None


def refused(out: Outcome, reason: str = "AddressOutsideSubnet") -> None:
    """Refused: rows left as they are (None), a False condition and a Warning Event."""
    assert out.rows == {POD: None}
    assert out.invalid is not None and out.invalid.reason == reason
    (st,) = [e for e in out.effects if isinstance(e, StatusEffect)]
    (ev,) = [e for e in out.effects if isinstance(e, EventEffect)]
    assert st.ready is False and st.reason == reason
    assert ev.type == "Warning" and ev.reason == reason


def world(cidr: str, annotations: dict[str, str], cfg: Config | None = None) -> Cluster:
    """Namespace t bound to subnet s1 (`cidr`), pod t/p with `annotations`."""
    return Cluster(cfg).add(f.subnet("s1", cidr, namespaces=["t"]),
                            f.pod("p", namespace="t", annotations=annotations)).sync_subnets()


def run(c: Cluster) -> Outcome:
    """Reconcile; the merge patch lands in the store, as the running controller's writer
    does (None deletes a key)."""
    out = reconcile_pod(c.ctx, "t/p")
    for eff in out.effects:
        if isinstance(eff, PatchEffect):
            c.add(merge_patch(c.get("Pod", "t/p"), eff.patch))
    return out


def resubnet(c: Cluster, cidr: str) -> Cluster:
    c.add(f.subnet("s1", cidr, namespaces=["t"])).sync_subnets()
    return c


def fresh(cidr: str, annotations: dict[str, str], running: Cluster) -> Cluster:
    """A new process: the file's annotations, IPAM restored from the pod's port in NB (what
    the running one holds)."""
    c = world(cidr, annotations)
    held = running.ipam.get("Pod/t/p")
    if held is not None:
        c.ipam.restore("Pod/t/p", held.subnet, held.ips, held.mac)
    return c


def test_a_request_that_stops_fitting_is_refused_in_the_running_and_a_fresh_process():
    """Seeds 67/85/96 of restart-anywhere: the request fits, then not, then again. The
    running controller never overwrites it, so both processes agree at every point."""
    asked = {keys.ANN_IP: "10.1.0.50"}
    running = world("10.1.0.0/24", asked)
    assert port(run(running)).addresses == ("0a:58:0a:01:00:32 10.1.0.50",)
    assert keys.ANN_IP_ALLOCATED not in running.get("Pod", "t/p")["metadata"]["annotations"]
    refused(run(resubnet(running, "10.2.0.0/24")))
    assert running.ipam.get("Pod/t/p") is None  # nothing re-allocated in the new CIDR
    assert running.get("Pod", "t/p")["metadata"]["annotations"][keys.ANN_IP] == "10.1.0.50"
    refused(run(fresh("10.2.0.0/24", asked, running)))
    back_running = run(resubnet(running, "10.1.0.0/24"))
    back_fresh = run(fresh("10.1.0.0/24", asked, running))
    assert port(back_running) == port(back_fresh)
    assert port(back_running).addresses == ("0a:58:0a:01:00:32 10.1.0.50",)


def test_a_request_is_refused_even_where_the_pod_was_placed():
    """Placed (logical_switch) or held (IPAM restored from NB): a request is still the
    user's; only the ip_allocated marker makes an address the controller's."""
    c = Cluster().add(f.pod("p", namespace="t", annotations={
        keys.ANN_SWITCH: "gone", keys.ANN_IP: "10.9.0.5"})).sync_subnets()
    refused(reconcile_pod(c.ctx, "t/p"))
    assert c.ipam.get("Pod/t/p") is None


def test_an_address_the_controller_chose_is_reallocated_when_it_stops_fitting():
    running = world("10.1.0.0/24", {})
    first = patch(run(running))
    assert first is not None and first[keys.ANN_IP_ALLOCATED] == first[keys.ANN_IP] == "10.1.0.2"
    moved = run(resubnet(running, "10.2.0.0/24"))
    assert port(moved).addresses == ("0a:58:0a:01:00:02 10.2.0.2",)
    ann = patch(moved)
    assert ann is not None and ann[keys.ANN_IP] == ann[keys.ANN_IP_ALLOCATED] == "10.2.0.2"
    # cluster mode: a fresh process reads the same annotations and keeps the new address
    again = Cluster().add(f.subnet("s1", "10.2.0.0/24", namespaces=["t"]),
                          running.get("Pod", "t/p")).sync_subnets()
    assert port(reconcile_pod(again.ctx, "t/p")) == port(moved)
    assert patch(reconcile_pod(again.ctx, "t/p")) is None
    # manifests mode: no annotations, IPAM restored from NB: the same port
    assert port(run(fresh("10.2.0.0/24", {}, running))) == port(moved)


def test_dual_stack_request_for_one_family_the_other_allocated():
    """The marker lists only the family the controller chose: that one follows the subnet,
    the requested one is refused when it stops fitting."""
    c = world("10.1.0.0/24,fd01::/120", {keys.ANN_IP: "10.1.0.50"})
    ann = patch(run(c))
    assert ann is not None
    assert (ann[keys.ANN_IP], ann[keys.ANN_IP_ALLOCATED]) == ("10.1.0.50,fd01::2", "fd01::2")
    assert patch(run(c)) is None  # settled: the marker keeps fd01::2 the controller's
    moved = run(resubnet(c, "10.1.0.0/24,fd02::/120"))  # v6 chosen: re-allocated; v4 kept
    assert port(moved).addresses[0].split()[1:] == ["10.1.0.50", "fd02::2"]
    after = patch(moved)
    assert after is not None and after[keys.ANN_IP_ALLOCATED] == "fd02::2"
    refused(run(resubnet(c, "10.2.0.0/24,fd02::/120")))  # v4 asked for: refused, not renumbered


def test_the_marker_goes_when_the_user_asks_for_every_address():
    c = world("10.1.0.0/24,fd01::/120", {})
    assert patch(run(c))[keys.ANN_IP_ALLOCATED] == "10.1.0.2,fd01::2"  # type: ignore[index]
    c.annotate("Pod", "t/p", {keys.ANN_IP: "10.1.0.9,fd01::9"})  # a user's new request
    c.ipam.release("Pod/t/p")
    out = run(c)
    assert port(out).addresses[0].split()[1:] == ["10.1.0.9", "fd01::9"]
    assert patch(out)[keys.ANN_IP_ALLOCATED] is None  # type: ignore[index]  # merge: delete
    assert keys.ANN_IP_ALLOCATED not in c.get("Pod", "t/p")["metadata"]["annotations"]


def test_a_pod_without_marker_gets_no_marker_key_in_its_patch():
    c = world("10.1.0.0/24", {keys.ANN_IP: "10.1.0.7"})
    ann = patch(run(c))
    assert ann is not None and keys.ANN_IP_ALLOCATED not in ann


def test_vnic_request_outside_its_subnet_is_refused_and_never_rewritten():
    """Vnics share the IPAM but their request is spec.ip, which the controller never writes:
    it is always the user's, so every process refuses it alike."""
    vnic = {"apiVersion": f.GROUP, "kind": "Vnic",
            "metadata": {"name": "v", "namespace": "t"},
            "spec": {"subnet": "s1", "node": "n1", "ip": "10.2.0.5"}}
    c = world("10.1.0.0/24", {}).add(vnic)
    out = reconcile_vnic(c.ctx, "t/v")
    assert out.rows == {Owner("Vnic", "t/v"): None}
    assert out.invalid is not None and out.invalid.reason == "AddressOutsideSubnet"
    assert not [e for e in out.effects if isinstance(e, PatchEffect)]
    assert c.ipam.get("Vnic/t/v") is None


def test_the_placement_annotation_counts_only_while_the_addresses_fit_it():
    """Manifests mode: the running store keeps logical_switch s1 from an earlier placement;
    a fresh process cannot restore an address outside s1 from NB. Neither sticks to s1:
    both choose the namespace's subnet, where the request fits."""
    subnets = (f.subnet("s1", "10.1.0.0/24"), f.subnet("s2", "10.2.0.0/24", namespaces=["t"]))
    running = Cluster().add(*subnets, f.pod("p", namespace="t", annotations={
        keys.ANN_IP: "10.2.0.9", keys.ANN_SWITCH: "s1"})).sync_subnets()
    fresh_ = Cluster().add(*subnets, f.pod("p", namespace="t", annotations={
        keys.ANN_IP: "10.2.0.9"})).sync_subnets()
    assert not fresh_.ipam.restore("Pod/t/p", "s1", (ip_address("10.2.0.9"),),
                                   "0a:58:0a:02:00:09")
    a, b = reconcile_pod(running.ctx, "t/p"), reconcile_pod(fresh_.ctx, "t/p")
    assert port(a) == port(b) and port(a).switch == "s2"
    assert port(a).addresses[0].split()[1:] == ["10.2.0.9"]
