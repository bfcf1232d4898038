"""A CRI client (runtime.v1 RuntimeService) over containerd's unix socket, as kubelet talks to it.

grpcio carries generic unary calls (`channel.unary_unary('/runtime.v1.RuntimeService/X')`,
raw bytes both ways); the messages are encoded and decoded by hand (protowire.py) for just the
fields used here, numbered as in the CRI API (k8s.io/cri-api, pkg/apis/runtime/v1/api.proto).
Why not generated code: the client needs six calls and a dozen fields; a hand-written codec
needs neither grpcio-tools nor protobuf nor a copy of api.proto in the repository.

`run_pod_sandbox(PodSpec(...))` sends what kubelet sends for a pod: metadata (name, uid,
namespace, attempt), hostname, log directory, labels/annotations and a Linux security context
with network/pid/ipc namespaces of the POD; containerd then calls the CNI plugin with
`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID` and `K8S_POD_UID` in
`CNI_ARGS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ycloud_lab.protowire import Fields, map_entries, message

SERVICE = "/runtime.v1.RuntimeService/"
NAMESPACE_POD, NAMESPACE_CONTAINER, NAMESPACE_NODE = 0, 1, 2
SANDBOX_READY, SANDBOX_NOTREADY = 0, 1
STATES = {SANDBOX_READY: "SANDBOX_READY", SANDBOX_NOTREADY: "SANDBOX_NOTREADY"}


class CriError(RuntimeError):
    """A CRI call failed: the method, the gRPC status code and the runtime's message."""

    def __init__(self, method: str, code: str, detail: str):
        super().__init__(f"CRI {method} failed ({code}): {detail}")
        self.method, self.code, self.detail = method, code, detail


@dataclass(frozen=True)
class PodSpec:
    """What kubelet puts in a PodSandboxConfig for one pod."""

    name: str
    namespace: str
    uid: str
    attempt: int = 0
    hostname: str = ""  # default: the pod name
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    cgroup_parent: str = ""

    def encode(self) -> bytes:
        """RunPodSandboxRequest{config = PodSandboxConfig}."""
        metadata = message([(1, self.name), (2, self.uid), (3, self.namespace),
                            (4, self.attempt or None)])
        network = NAMESPACE_NODE if self.host_network else NAMESPACE_POD
        # NamespaceOption{network = 1, pid = 2, ipc = 3}; kubelet asks CONTAINER pid for v1 pods
        ns_options = message([(1, network or None), (2, NAMESPACE_CONTAINER),
                              (3, network or None)])
        security = message([(1, ns_options)])  # LinuxSandboxSecurityContext.namespace_options
        linux = message([(1, self.cgroup_parent or None), (2, security)])
        config = (message([(1, metadata), (2, self.hostname or self.name),
                           (3, self.log_directory or None)])
                  + map_entries(6, self.labels) + map_entries(7, self.annotations)
                  + message([(8, linux)]))
        return message([(1, config)])


@dataclass(frozen=True)
class SandboxStatus:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: str  # SANDBOX_READY | SANDBOX_NOTREADY
    created_at: int  # nanoseconds
    ips: tuple[str, ...]  # primary first
    info: dict[str, Any]  # verbose info, JSON-decoded ("info" holds pid, runtimeSpec, ...)

    @property
    def ip(self) -> str:
        return self.ips[0] if self.ips else ""

    @property
    def ready(self) -> bool:
        return self.state == STATES[SANDBOX_READY]

    @property
    def pid(self) -> int:
        return int(self.info.get("info", {}).get("pid") or 0)

    @property
    def netns_path(self) -> str:
        """The pod's network namespace as containerd mounted it (verbose info's runtimeSpec),
        or /proc/<sandbox pid>/ns/net."""
        spec = self.info.get("info", {}).get("runtimeSpec", {})
        for ns in spec.get("linux", {}).get("namespaces", []):
            if ns.get("type") == "network" and ns.get("path"):
                return str(ns["path"])
        return f"/proc/{self.pid}/ns/net" if self.pid else ""


@dataclass(frozen=True)
class SandboxSummary:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    state: str
    labels: dict[str, str]


def _metadata(f: Fields) -> tuple[str, str, str, int]:
    return f.str(1), f.str(3), f.str(2), f.int(4)  # name, namespace, uid, attempt


class CriClient:
    """RuntimeService over `unix://<socket>`; every call has a deadline (timeout seconds)."""

    def __init__(self, socket: str | Path, timeout: float = 60.0):
        self.socket = str(socket)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, request: bytes, timeout: float | None = None) -> Fields:
        stub = self.channel.unary_unary(SERVICE + method)
        try:
            reply = stub(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            raise CriError(method, code, detail or "") from None
        return Fields(reply)

    def version(self) -> dict[str, str]:
        f = self.call("Version", message([(1, "v1")]))
        return {"version": f.str(1), "runtime_name": f.str(2), "runtime_version": f.str(3),
                "runtime_api_version": f.str(4)}

    def run_pod_sandbox(self, pod: PodSpec, runtime_handler: str = "") -> str:
        """Create and start the pod's sandbox (containerd calls CNI ADD); its id."""
        request = pod.encode() + message([(2, runtime_handler or None)])
        return self.call("RunPodSandbox", request).str(1)

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop the sandbox; containerd calls CNI DEL. Idempotent."""
        self.call("StopPodSandbox", message([(1, sandbox_id)]))

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove a stopped sandbox (and its netns). Idempotent."""
        self.call("RemovePodSandbox", message([(1, sandbox_id)]))

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = True) -> SandboxStatus:
        f = self.call("PodSandboxStatus", message([(1, sandbox_id), (2, verbose)]))
        st = f.msg(1)
        name, namespace, uid, attempt = _metadata(st.msg(2))
        net = st.msg(5)
        ips = tuple(ip for ip in [net.str(1), *(p.str(1) for p in net.msgs(2))] if ip)
        info: dict[str, Any] = {}
        for key, value in f.map(2).items():
            try:
                info[key] = json.loads(value)
            except ValueError:
                info[key] = value
        return SandboxStatus(id=st.str(1), name=name, namespace=namespace, uid=uid,
                             attempt=attempt, state=STATES.get(st.int(3), str(st.int(3))),
                             created_at=st.int(4), ips=ips, info=info)

    def list_pod_sandbox(self, *, state: int | None = None,
                         labels: dict[str, str] | None = None) -> list[SandboxSummary]:
        filt = b""
        if state is not None or labels:
            state_value = message([(1, state)]) if state is not None else None
            # PodSandboxStateValue{state = 1}; a zero state must still be sent as a message
            filt = message([(2, state_value)]) + map_entries(3, labels)
        f = self.call("ListPodSandbox", message([(1, filt or None)]))
        out = []
        for item in f.msgs(1):
            name, namespace, uid, attempt = _metadata(item.msg(2))
            out.append(SandboxSummary(id=item.str(1), name=name, namespace=namespace, uid=uid,
                                      attempt=attempt,
                                      state=STATES.get(item.int(3), str(item.int(3))),
                                      labels=item.map(5)))
        return out
