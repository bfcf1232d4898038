"""Static checks of manifests/node/ (the node agent of ycloud-cni) and manifests/kustomization.yaml.

Parsing and strict validation of every object are in test_manifests_files.py (ALL_FILES holds
these files); here: the kustomization installs everything, the DaemonSet's command lines are
ones the agent and install-cni accept, its privileges are the least a CNI can run with, its
RBAC is exactly what the agent reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.unit.manifests_support import _files, _objects, _rules
from ycloud_controller.node import cli as node_cli
from ycloud_controller.node import install

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NODE_NAMESPACE = "ycloud-node"
OBJECTS = [o for _, o in _objects(_files(MANIFESTS / "node"))]


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


DAEMONSET = one("DaemonSet", "ycloud-node")
POD = DAEMONSET["spec"]["template"]["spec"]
(AGENT,) = POD["containers"]
(INIT,) = POD["initContainers"]


def test_kustomization_lists_every_manifest_but_the_examples() -> None:
    kust = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization"
    listed = kust["resources"]
    assert len(listed) == len(set(listed))
    every = {str(p.relative_to(MANIFESTS)) for d in ("", "crds", "node")
             for p in _files(MANIFESTS / d)}
    assert set(listed) == every


def test_node_objects_live_in_their_namespace() -> None:
    for obj in OBJECTS:
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NODE_NAMESPACE, obj["metadata"]
    ns = one("Namespace", NODE_NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_node_rbac_is_exactly_what_the_agent_reads() -> None:
    read = {"get", "list", "watch"}
    assert _rules(one("ClusterRole", "ycloud-node")) == {
        ("", "pods"): read, ("", "nodes"): read,
        ("iaas.yusur.io", "eippools"): read, ("iaas.yusur.io", "vnics"): read}
    binding = one("ClusterRoleBinding", "ycloud-node")
    assert binding["roleRef"]["name"] == "ycloud-node"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ycloud-node",
                                    "namespace": NODE_NAMESPACE}]
    assert POD["serviceAccountName"] == "ycloud-node"


def _expand(args: list[str], env: dict[str, str]) -> list[str]:
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in args]


def test_the_agent_and_install_cni_accept_their_command_lines() -> None:
    env = {e["name"]: e for e in AGENT["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    config = one("ConfigMap", "ycloud-node-config")["data"]
    values = {"NODE_NAME": "n1", "NODE_IP": "192.0.2.7"}
    for name, e in env.items():
        ref = e.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert ref["name"] == "ycloud-node-config"
            values[name] = config[ref["key"]]
    assert AGENT["command"] == ["ycloud-controller"] and AGENT["args"][0] == "node"
    args = node_cli.build_parser().parse_args(_expand(AGENT["args"][1:], values))
    cfg = node_cli.config_of(args)
    assert (cfg.node, cfg.chassis.encap_ip, cfg.ovs_db) == ("n1", "192.0.2.7",
                                                            "unix:/run/openvswitch/db.sock")
    assert cfg.socket == "/run/ycloud/cni.sock" and args.in_cluster
    assert INIT["args"][0] == "install-cni"
    mounts = {m["mountPath"] for m in INIT["volumeMounts"]}
    i = INIT["args"]
    assert i[i.index("--bin-dir") + 1] in mounts and i[i.index("--conf-dir") + 1] in mounts
    assert i[i.index("--socket") + 1] == cfg.socket  # the host's path of the agent's socket
    assert install.CONFLIST == "10-ycloud.conflist"


def test_the_agent_runs_with_the_least_privileges_a_cni_needs() -> None:
    assert POD["hostNetwork"] is True and not POD.get("hostPID") and not POD.get("hostIPC")
    for ctr, caps in ((AGENT, ["NET_ADMIN", "SYS_ADMIN"]), (INIT, None)):
        sc = ctr["securityContext"]
        assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["capabilities"].get("add") == caps
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in POD["volumes"]}
    host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
    assert host_paths == {"/opt/cni/bin", "/etc/cni/net.d", "/run/openvswitch", "/run/ycloud",
                          "/var/run/netns"}
    mounts = {m["mountPath"]: m for m in AGENT["volumeMounts"]}
    assert mounts["/var/run/netns"]["mountPropagation"] == "HostToContainer"
    assert {m["name"] for m in AGENT["volumeMounts"]} >= {"ovs-run", "ycloud-run", "netns"}
    assert all(m["name"] in volumes for c in (AGENT, INIT) for m in c["volumeMounts"])


def test_the_agent_probes_its_health_port() -> None:
    ports = {p["name"]: p["containerPort"] for p in AGENT["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = AGENT[probe]["httpGet"]
        assert get["path"] == path and ports[get["port"]] == 10666
    args = AGENT["args"]
    assert args[args.index("--http-port") + 1] == "10666"
