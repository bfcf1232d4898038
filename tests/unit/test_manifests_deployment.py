"""The controller's Deployment, metrics Service and ConfigMap in manifests/: replicas, image,
command line, probes, resources, the `restricted` Pod Security Standard, volumes, spreading
over nodes, the config keys.
"""

from __future__ import annotations

import re

from tests.unit.manifests_support import (
    CLUSTER_OBJECTS,
    CONFIG,
    CONFIGMAP,
    DEFAULT_VPC,
    SYSTEM_NAMESPACE,
    _one,
)

DEPLOYMENT = _one("Deployment", "ycloud-controller")
POD_SPEC = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD_SPEC["containers"][0]


def test_deployment_replicas_image_and_account() -> None:
    assert DEPLOYMENT["spec"]["replicas"] == 2
    assert len(POD_SPEC["containers"]) == 1
    assert CONTAINER["image"] == "ycloud-controller:0.1.0"
    assert POD_SPEC["serviceAccountName"] == "ycloud-controller"
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_command() -> None:
    assert CONTAINER["command"] + CONTAINER["args"] == [
        "ycloud-controller", "run", "--config", "/etc/ycloud/config.yaml",
        "--log-format", "json", "--http-port", "8080", "--leader-elect",
        "--lease-namespace", SYSTEM_NAMESPACE,
        "--ovn-nb-db", "$(OVN_NB_DB)", "--ovn-sb-db", "$(OVN_SB_DB)",
        "--ovn-ssl-key", "/etc/ycloud/ssl/tls.key", "--ovn-ssl-cert", "/etc/ycloud/ssl/tls.crt",
        "--ovn-ssl-ca", "/etc/ycloud/ssl/ca.crt"]
    env = {e["name"]: e for e in CONTAINER["env"]}
    for arg in CONTAINER["args"]:
        for var in re.findall(r"\$\((\w+)\)", arg):
            assert var in env, f"$({var}) is not an env var: Kubernetes would not expand it"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for var, key in (("OVN_NB_DB", "ovn-nb-db"), ("OVN_SB_DB", "ovn-sb-db")):
        assert env[var]["valueFrom"] == {"configMapKeyRef": {"name": "ycloud-config", "key": key}}
        assert re.fullmatch(r"(ssl|tcp):[^:]+:\d+|unix:/\S+", CONFIGMAP["data"][key])


def test_deployment_probes_and_resources() -> None:
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = CONTAINER[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 8080
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= CONTAINER["resources"][part].keys()


def test_deployment_security() -> None:
    """Non-root, read-only and within the `restricted` Pod Security Standard."""
    pod, ctr = POD_SPEC["securityContext"], CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ctr["runAsNonRoot"] is True and ctr["runAsUser"] == 65532
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr.get("privileged", False) is False
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    assert ctr["seccompProfile"] == {"type": "RuntimeDefault"}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not POD_SPEC.get(host)
    allowed = {"configMap", "secret", "emptyDir", "projected", "downwardAPI"}
    for volume in POD_SPEC["volumes"]:
        assert set(volume) - {"name"} <= allowed, volume
    namespace = _one("Namespace", SYSTEM_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_deployment_volumes() -> None:
    volumes = {v["name"]: v for v in POD_SPEC["volumes"]}
    mounts = {m["mountPath"]: m for m in CONTAINER["volumeMounts"]}
    config = mounts["/etc/ycloud/config.yaml"]
    assert volumes[config["name"]]["configMap"]["name"] == "ycloud-config"
    assert config["subPath"] == "config.yaml" and config["readOnly"] is True
    ssl = volumes[mounts["/etc/ycloud/ssl"]["name"]]["secret"]
    assert ssl["secretName"] == "ycloud-ovn-ssl" and ssl["optional"] is True
    assert ssl["defaultMode"] == 0o440  # group-readable: fsGroup 65532
    assert POD_SPEC["securityContext"]["fsGroup"] == 65532
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    for mount in CONTAINER["volumeMounts"]:
        assert mount["name"] in volumes


def test_deployment_replicas_spread() -> None:
    anti = POD_SPEC["affinity"]["podAntiAffinity"]
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
        t["podAffinityTerm"] for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution",
                                               [])]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname"
               and t["labelSelector"]["matchLabels"].items() <= labels.items() for t in terms)


def test_metrics_service() -> None:
    services = [o for _, o in CLUSTER_OBJECTS if o["kind"] == "Service"]
    assert len(services) == 1
    service = services[0]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["port"] == 8080
    container_ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert container_ports.get(port["targetPort"], port["targetPort"]) == 8080


def test_config_keys() -> None:
    assert CONFIG == {
        "defaultVpc": DEFAULT_VPC,
        "joinSubnet": {"name": "subnet0", "cidr": "100.64.0.0/16"},
        "defaultSubnet": {"name": "ovn-default", "cidr": "10.16.0.0/16"},
        "serviceCidr": "10.96.0.0/12",
        "internalCidr": "100.88.0.0/16",
        "mtu": 1400,
    }
    assert set(CONFIGMAP["data"]) == {"config.yaml", "ovn-nb-db", "ovn-sb-db"}
