"""The controller's RBAC in manifests/: no wildcards and no admin roles, exactly the rules the
controller uses (cluster-wide and for leader election), bindings to its service account.
"""

from __future__ import annotations

from tests.unit.manifests_support import (
    CLUSTER_OBJECTS,
    GROUP,
    SYSTEM_NAMESPACE,
    _one,
    _rules,
)

READ = {"get", "list", "watch"}
OWN = READ | {"create", "update", "patch", "delete"}
STATUS = {"get", "update", "patch"}
EVENTS = {"create", "patch", "update"}
EXPECTED_CLUSTER_RULES = {
    ("", "namespaces"): READ,
    ("", "nodes"): READ | {"patch"},  # the node port's annotations (the node agent reads them)
    ("", "pods"): READ | {"patch"},
    ("", "services"): OWN,
    ("", "services/status"): STATUS,
    ("", "pods/status"): STATUS,
    ("discovery.k8s.io", "endpointslices"): OWN,
    ("", "events"): EVENTS,
    ("events.k8s.io", "events"): EVENTS,
    **{(GROUP, r): READ for r in ("vpcs", "subnets", "eippools", "vnics", "yusurservices")},
    **{(GROUP, f"{r}/status"): STATUS
       for r in ("vpcs", "subnets", "eippools", "vnics", "yusurservices", "networkprobes")},
    (GROUP, "networkprobes"): OWN,
}
EXPECTED_LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}


def test_rbac_has_no_wildcards_and_no_cluster_admin() -> None:
    for _, obj in CLUSTER_OBJECTS:
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames",
                              "nonResourceURLs"):
                    assert not any("*" in v for v in rule.get(field, [])), (field, rule)
            assert "aggregationRule" not in obj
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            assert obj["roleRef"]["name"] not in ("cluster-admin", "admin", "edit"), obj


def test_rbac_is_exactly_what_the_controller_uses() -> None:
    assert _rules(_one("ClusterRole", "ycloud-controller")) == EXPECTED_CLUSTER_RULES
    role = _one("Role", "ycloud-controller-leader-election")
    assert role["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert _rules(role) == EXPECTED_LEASE_RULES


def test_rbac_bindings_point_at_the_service_account() -> None:
    account = _one("ServiceAccount", "ycloud-controller")
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"],
               "namespace": account["metadata"]["namespace"]}
    binding = _one("ClusterRoleBinding", "ycloud-controller")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "ycloud-controller"}
    assert binding["subjects"] == [subject]
    binding = _one("RoleBinding", "ycloud-controller-leader-election")
    assert binding["metadata"]["namespace"] == SYSTEM_NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "ycloud-controller-leader-election"}
    assert binding["subjects"] == [subject]
