"""Kubernetes object dicts for unit tests, shaped like what informers hand to reconcilers."""

from __future__ import annotations

from typing import Any

GROUP = "iaas.yusur.io/v1"


def _md(name: str, namespace: str | None, age: int | None, **extra: Any) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, **{k: v for k, v in extra.items() if v is not None}}
    if namespace is not None:
        md["namespace"] = namespace
    if age is not None:
        md["creationTimestamp"] = f"2024-01-01T00:{age // 60:02d}:{age % 60:02d}Z"
    return md


def vpc(name: str, age: int = 0, namespaces: list[str] | None = None,
        **spec: Any) -> dict[str, Any]:
    s = dict(spec)
    if namespaces is not None:
        s["namespaces"] = namespaces
    return {"apiVersion": GROUP, "kind": "Vpc", "metadata": _md(name, None, age), "spec": s}


def subnet(name: str, cidr: str, vpc: str | None = None, age: int = 0,
           namespaces: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"cidrBlock": cidr, **spec}
    if vpc is not None:
        s["vpc"] = vpc
    if namespaces is not None:
        s["namespaces"] = namespaces
    return {"apiVersion": GROUP, "kind": "Subnet", "metadata": _md(name, None, age), "spec": s}


def eippool(name: str, cidr: str, gateway: str, age: int = 0, **spec: Any) -> dict[str, Any]:
    s = {"cidr": cidr, "gateway": gateway, "providerNetwork": "physnet1",
         "gatewayNodes": ["n1"], **spec}
    return {"apiVersion": GROUP, "kind": "EipPool", "metadata": _md(name, None, age), "spec": s}


def pod(name: str, namespace: str = "default", annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None, node: str | None = "n1", phase: str = "Running",
        host_network: bool = False, ready: bool | None = None,
        container_ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "ports": container_ports or []}]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    status: dict[str, Any] = {"phase": phase}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _md(name, namespace, None, annotations=annotations, labels=labels),
            "spec": spec, "status": status}


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": _md(name, None, None)}


def service(name: str, namespace: str = "default", cluster_ips: list[str] | None = None,
            ports: list[dict[str, Any]] | None = None,
            annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = dict(spec)
    if cluster_ips is not None:
        s["clusterIP"] = cluster_ips[0]
        s["clusterIPs"] = cluster_ips
    s["ports"] = ports if ports is not None else [{"name": "http", "port": 80,
                                                     "targetPort": 8080}]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _md(name, namespace, None, annotations=annotations), "spec": s}


def endpoint(ip: str, ready: bool | None = True, terminating: bool | None = None,
             node: str = "n1", serving: bool | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {}
    if ready is not None:
        cond["ready"] = ready
    if serving is not None:
        cond["serving"] = serving
    if terminating is not None:
        cond["terminating"] = terminating
    return {"addresses": [ip], "conditions": cond, "nodeName": node}


def endpoint_slice(service_name: str, endpoints: list[dict[str, Any]],
                   ports: list[dict[str, Any]] | None = None, namespace: str = "default",
                   address_type: str = "IPv4", name: str | None = None,
                   labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _md(name or f"{service_name}-{address_type.lower()}", namespace, None,
                            labels={"kubernetes.io/service-name": service_name,
                                    **(labels or {})}),
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080,
                                                       "protocol": "TCP"}]}
