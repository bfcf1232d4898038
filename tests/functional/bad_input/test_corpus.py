"""Bad input (issue 9): the corpus of malformed and hostile objects on top of the examples.

The tests run the real controller (its watch loop on FakeKube, the real kubernetes client, a
real NB) and check, for every corpus object, its condition through the API and a Warning
Event about it with the same reason; that the controller keeps running and stays ready; that
the examples' NB rows are exactly what they were without the corpus, also after a restart and
on a cold start; and that owners of refused objects have no rows.

FakeKube does not validate CRD schemas nor most core fields, so objects the API server would
refuse (port 70000, a /33, unicode label values) reach the controller, which must refuse them
itself. FakeKube also has no endpoint controller and no ClusterIP allocator: the controller
runs with emulation on (what `--manifests` mode does) so that Services get ClusterIPs and
EndpointSlices, as in a cluster.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fakekube.server import FakeKube
from fakekube.util import wait_for
from ovn_sandbox import Sandbox

from tests.functional.bad_input.support import (
    DEADLINE,
    FIRST_COME,
    assert_alive,
    check_nb_of_corpus,
    converge,
    create,
    example_owners,
    expectation,
    forget_verdicts,
    ident,
    mismatches,
    next_second,
    ok,
    settled,
    snapshot,
    tiers,
)
from tests.functional.test_controller import running
from topology.nbsync.client import NbClient


def test_corpus_is_large_and_annotated(corpus: list[dict[str, Any]]) -> None:
    bad = [o for o in corpus if (e := expectation(o)) is not None and not e.ok]
    assert len(bad) >= 50
    assert len({ident(o) for o in corpus}) == len(corpus), "an object is listed twice"
    kinds = {o["kind"] for o in bad}
    assert kinds >= {"Vpc", "Subnet", "EipPool", "Pod", "Vnic", "Service", "YusurService"}


def test_corpus_live_on_top_of_the_examples(fake: FakeKube, sandbox: Sandbox, nb: NbClient,
                                            examples: list[dict[str, Any]],
                                            corpus: list[dict[str, Any]]) -> None:
    owners = example_owners(examples)
    create(fake, examples)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        # without the corpus: every example converged; that is the reference
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")
        settled(fake, ctl)
        baseline = snapshot(sandbox, owners)
        assert "lb Service_demo/multi_TCP_eip" in baseline
        assert "lb Service_default/ysvc1_TCP_cluster" in baseline
        # the corpus, the younger side of each conflict pair a second later
        for i, tier in enumerate(tiers(corpus)):
            if i:
                converge(fake, [o for t in tiers(corpus)[:i] for o in t])
                next_second()
            create(fake, tier)
        converge(fake, corpus)
        assert_alive(ctl)
        settled(fake, ctl)
        assert snapshot(sandbox, owners) == baseline
        assert not check_nb_of_corpus(sandbox, corpus)
        assert not mismatches(fake, [ok(o) for o in examples], events=False)
    # a restart with everything in place: the same verdicts (conditions and Events erased in
    # between, so they are found again), the same rows
    forget_verdicts(fake, corpus)
    with running(fake, sandbox, emulate=True, wait_synced=True) as again:
        wait_for(again.ready, timeout=DEADLINE, what="restarted controller ready")
        converge(fake, corpus)
        assert_alive(again)
        settled(fake, again)
        assert snapshot(sandbox, owners) == baseline
        assert not check_nb_of_corpus(sandbox, corpus)


def test_corpus_and_examples_from_a_cold_start(fake: FakeKube, sandbox: Sandbox, nb: NbClient,
                                               examples: list[dict[str, Any]],
                                               corpus: list[dict[str, Any]]) -> None:
    """Everything at once into an empty NB: conflicts are decided by age, not by which
    object the controller happened to see first, and the examples still come up whole."""
    corpus = [o for o in corpus if ident(o) not in FIRST_COME]
    create(fake, examples)
    for tier in tiers(corpus):
        next_second()  # the examples are older than the corpus, tier 0 older than tier 1
        create(fake, tier)
    with running(fake, sandbox, emulate=True, wait_synced=True) as ctl:
        converge(fake, corpus)
        wait_for(lambda: not mismatches(fake, [ok(o) for o in examples], events=False),
                 timeout=DEADLINE, what="examples ready")
        assert_alive(ctl)
        settled(fake, ctl)
        state = snapshot(sandbox, example_owners(examples))
        assert not check_nb_of_corpus(sandbox, corpus)
    # the examples' shape: every LB with its VIPs and as many backends as without the corpus
    vips = {k: {vip: len(bes.split(",")) for vip, bes in v.items()}
            for k, v in state.items() if k.startswith("lb ")}
    ysvc1 = vips.pop("lb Service_default/ysvc1_TCP_cluster")  # its ClusterIP is allocated
    assert list(ysvc1.values()) == [3]  # iperf-1, vm-1 and vm-1's extra address
    assert vips == EXAMPLE_LBS
    pods = {k.removeprefix("port "): v.split()[1:] for k, v in state.items()
            if k.startswith("port ")}
    for port, subnet in EXAMPLE_PORTS.items():
        assert port in pods, port
        net = ipaddress.ip_network(subnet)
        assert all(ipaddress.ip_address(ip) in net for ip in pods[port]), (port, pods[port])


# what the examples build, VIP -> number of backends (manifests/examples, README scenarios)
EXAMPLE_LBS = {
    "lb Service_ns-vpc1/web_TCP_cluster": {"10.96.10.10:80": 2},
    "lb Service_ns-vpc1/web_UDP_cluster": {"10.96.10.10:53": 2},
    "lb Service_ns-vpc1/web-eip_TCP_cluster": {"10.96.10.11:80": 2, "172.18.0.50:80": 2},
    "lb Service_ns-vpc1/web-eip_TCP_eip": {"172.18.0.50:80": 2},
    "lb Service_default/nginx_TCP_cluster": {"10.96.20.20:80": 2},
    "lb Service_demo/multi_TCP_eip": {"172.18.0.60:80": 2},
}
EXAMPLE_PORTS = {
    "web-1.ns-vpc1": "10.1.1.0/24", "web-2.ns-vpc1": "10.1.1.0/24",
    "client-1.ns-vpc1": "10.1.2.0/24", "client-2.ns-vpc2": "10.2.1.0/24",
    "nginx-1.default": "10.16.0.0/16", "nginx-2.default": "10.16.0.0/16",
    "multi-1.ns-vpc1": "10.1.1.0/24", "multi-2.ns-vpc2": "10.2.1.0/24",
    "iperf-1.ns-vpc1": "10.1.1.0/24", "vnic.vm-1.ns-vpc1": "10.1.1.0/24",
}
