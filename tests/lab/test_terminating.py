"""KEP-1669 with real packets: a Service's endpoints go ready -> serving+terminating -> gone
(a hand-written EndpointSlice, as a rolling update writes it). An open TCP connection
through the VIP survives the move to serving+terminating, and new connections are answered
by the terminating backends (there is no ready one left) instead of being rejected; once
they are gone, the VIP rejects.

Runs on the examples served by the in-process controller (`examples` fixture)."""

from __future__ import annotations

import pytest
from ycloud_lab.scenarios import CLIENT1, WEB, wait_until

from topology import naming
from ycloud_controller.kube import resources as res

from .conftest import Examples, lb_vips, service, wait_deleted, wait_vip

pytestmark = pytest.mark.lab

VIP = "10.96.10.16"
WEB1, WEB2 = naming.pod_port("ns-vpc1", "web-1"), naming.pod_port("ns-vpc1", "web-2")


def endpoint(ip: str, ready: bool, serving: bool, terminating: bool) -> dict:
    return {"addresses": [ip], "conditions": {"ready": ready, "serving": serving,
                                              "terminating": terminating}}


def test_open_connection_survives_the_move_to_serving_terminating(examples: Examples) -> None:
    lab, backend = examples.lab, examples.backend
    web1, web2 = (examples.resolver.port_ips(p)[0] for p in (WEB1, WEB2))
    svc = service("rolling", "ns-vpc1", VIP, {})
    del svc["spec"]["selector"]  # endpoints written by hand, as an EndpointSlice controller
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "rolling-1", "namespace": "ns-vpc1",
                           "labels": {"kubernetes.io/service-name": "rolling"}},
              "addressType": "IPv4", "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
              "endpoints": [endpoint(web1, True, True, False),
                            endpoint(web2, False, False, False)]}

    def set_endpoints(*endpoints: dict) -> None:
        current = backend.get(res.ENDPOINTSLICES, "rolling-1", "ns-vpc1")
        backend.update(res.ENDPOINTSLICES, {**current, "endpoints": list(endpoints)})

    backend.create(res.SERVICES, svc)
    backend.create(res.ENDPOINTSLICES, slice_)
    try:
        wait_vip(lab, f"{VIP}:80", lambda ips: ips == [web1], "web-1 alone in the VIP")
        with lab.open_connection(CLIENT1, VIP, 80) as held:
            first = held.send("before")
            assert first.ok and first.server == "web-1", first

            # web-1 terminates while still serving; web-2 (which was starting, not ready)
            # terminates too: no ready endpoint, both serving+terminating carry the VIP
            set_endpoints(endpoint(web1, False, True, True), endpoint(web2, False, True, True))
            wait_vip(lab, f"{VIP}:80", lambda ips: ips == sorted([web1, web2]),
                     "both serving+terminating endpoints in the VIP")
            after = held.send("after")
            assert after.ok and after.server == "web-1", after
            replies = lab.requests(CLIENT1, "tcp", VIP, 80, count=10)
            assert all(r.ok for r in replies), [str(r) for r in replies]
            assert {r.server for r in replies} <= set(WEB)

            # gone: the VIP stays and rejects new connections
            set_endpoints()
            wait_vip(lab, f"{VIP}:80", lambda ips: ips == [], "the VIP without backends")
            gone = lab.requests(CLIENT1, "tcp", VIP, 80, count=3, timeout=5)
            assert all(not r.ok and r.error in ("refused", "reset") for r in gone), \
                [str(r) for r in gone]
    finally:
        backend.delete(res.ENDPOINTSLICES, "rolling-1", "ns-vpc1")
        wait_deleted(examples, "Service", "rolling", "ns-vpc1")
        wait_until(lambda: f"{VIP}:80" not in lb_vips(lab), 20, "the rolling LB removed")
