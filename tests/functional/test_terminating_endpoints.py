"""KEP-1669 against real NB: a Service whose hand-written EndpointSlice goes ready ->
serving+terminating -> gone keeps its backends while they are serving and terminating (no
ready endpoint is left), and its VIP rejects once they are gone."""

from __future__ import annotations

from ovn_sandbox import Sandbox

from tests.functional.conftest import find
from ycloud_controller.controller import Controller
from ycloud_controller.kube import resources as res
from ycloud_controller.memkube.store import MemoryStore

VIP, LB = "10.96.3.1:80", "Service_default/s0_TCP_cluster"
# (ready, serving, terminating)
READY, SERVING_TERMINATING, TERMINATING = (True, True, False), (False, True, True), \
    (False, False, True)


def set_endpoints(ctl: Controller, store: MemoryStore, sandbox: Sandbox,
                  endpoints: dict[int, tuple[bool, bool, bool]]) -> dict:
    """Endpoints 10.16.0.<n> with their conditions; the NB Load_Balancer once the controller
    handled the change."""
    current = store.get(res.ENDPOINTSLICES, "s0-a", "default")
    store.update(res.ENDPOINTSLICES, {**current, "endpoints": [
        {"addresses": [f"10.16.0.{n}"], "conditions": dict(zip(
            ("ready", "serving", "terminating"), cond, strict=True))}
        for n, cond in endpoints.items()]})
    assert ctl.drain(timeout=30)
    (lb,) = find(sandbox, "Load_Balancer", f'name="{LB}"')
    return lb


def test_serving_terminating_endpoints_carry_the_vip_until_they_are_gone(
        svc_ctl: Controller, svc_store: MemoryStore, sandbox: Sandbox) -> None:
    assert svc_ctl.full_sync().converged

    def backends(endpoints: dict[int, tuple[bool, bool, bool]]) -> str:
        return set_endpoints(svc_ctl, svc_store, sandbox, endpoints)["vips"][VIP]

    assert backends({10: READY, 11: READY}) == "10.16.0.10:8080,10.16.0.11:8080"
    # a rolling update: one old endpoint terminates while the other is still ready
    assert backends({10: SERVING_TERMINATING, 11: READY}) == "10.16.0.11:8080"
    # no ready endpoint left: the serving and terminating ones carry the VIP
    assert backends({10: SERVING_TERMINATING, 11: SERVING_TERMINATING, 12: TERMINATING}) == \
        "10.16.0.10:8080,10.16.0.11:8080"
    # one stops serving, then they are gone: the VIP stays, empty, and rejects
    assert backends({10: TERMINATING, 11: SERVING_TERMINATING}) == "10.16.0.11:8080"
    lb = set_endpoints(svc_ctl, svc_store, sandbox, {})
    assert lb["vips"][VIP] == "" and lb["options"].get("reject") == "true"
