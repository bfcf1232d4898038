"""Pods made by the runtime, as kubelet makes them: `create_pod` is RunPodSandbox (containerd
creates the pod's netns and calls the CNI plugin: ADD), then PodSandboxStatus (IPs, sandbox
pid, netns path); `delete_pod` is StopPodSandbox (CNI DEL) and RemovePodSandbox.

The pod's network namespace is containerd's (under its state dir). `netns_name` also names it
in /run/netns (a bind mount, as `ip netns attach` makes), so `ip netns exec NAME` and the lab's
traffic tools (workload.py, which run `python -m ycloud_lab.traffic` there) work in the pod;
`delete_pod` removes that name. `pod_exec` runs a host command in the pod's netns by path.
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ycloud_lab.cri import CriError
from ycloud_lab.proc import LabError, run

if TYPE_CHECKING:
    from ycloud_lab.runtime import Containerd

log = logging.getLogger("ycloud_lab")

NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Pod:
    sandbox_id: str
    name: str
    namespace: str
    uid: str
    ips: tuple[str, ...]  # primary first, as PodSandboxStatus reports them
    netns_path: str  # containerd's mount of the pod's network namespace
    netns_name: str | None  # its name in /run/netns, when create_pod was given one
    pid: int  # the sandbox process (PID 1 of the pod)
    create_seconds: float  # RunPodSandbox latency: netns, CNI ADD, sandbox container

    @property
    def ip(self) -> str:
        return self.ips[0] if self.ips else ""


def create_pod(runtime: Containerd, name: str, namespace: str = "default",
               uid: str | None = None, *, netns_name: str | None = None,
               labels: dict[str, str] | None = None,
               annotations: dict[str, str] | None = None) -> Pod:
    """RunPodSandbox for the pod; raises CriError with the runtime's (CNI's) message."""
    spec = runtime.pod(name, namespace, uid or str(uuid.uuid4()), labels=labels or {},
                       annotations=annotations or {})
    with runtime.cri() as client:
        start = time.monotonic()
        try:
            sandbox_id = client.run_pod_sandbox(spec)
        except CriError:
            remove_failed(runtime, spec.name, spec.namespace, spec.uid, spec.attempt)
            raise
        elapsed = time.monotonic() - start
        status = client.pod_sandbox_status(sandbox_id, verbose=True)
    if not status.ready or not status.netns_path:
        raise LabError(f"pod {namespace}/{name}: sandbox {sandbox_id} is {status.state} "
                       f"(netns {status.netns_path!r}); see {runtime.logfile}")
    if netns_name:
        try:
            attach_netns(netns_name, status.netns_path)
        except LabError:
            _remove_sandbox(runtime, sandbox_id)
            raise
    return Pod(sandbox_id=sandbox_id, name=name, namespace=namespace, uid=spec.uid,
               ips=status.ips, netns_path=status.netns_path, netns_name=netns_name,
               pid=status.pid, create_seconds=elapsed)


def delete_pod(runtime: Containerd, pod: Pod) -> None:
    """StopPodSandbox (CNI DEL) and RemovePodSandbox, then drop the pod's netns name."""
    try:
        _remove_sandbox(runtime, pod.sandbox_id)
    finally:
        if pod.netns_name:
            detach_netns(pod.netns_name)


def _remove_sandbox(runtime: Containerd, sandbox_id: str) -> None:
    with runtime.cri() as client:
        client.stop_pod_sandbox(sandbox_id)
        client.remove_pod_sandbox(sandbox_id)


def remove_failed(runtime: Containerd, name: str, namespace: str, uid: str,
                  attempt: int = 0) -> bool:
    """What kubelet does after a failed RunPodSandbox: stop and remove the sandbox the runtime
    may have kept for the pod (containerd 1.6 keeps a NOTREADY one when the network could not
    be set up, e.g. "cni plugin not initialized"), freeing its name for the next try. While
    the CNI plugin cannot run, its StopPodSandbox fails too (the DEL cannot be made): False
    then, with the sandbox left for a later call."""
    with runtime.cri() as client:
        for sb in client.list_pod_sandbox():
            if (sb.name, sb.namespace, sb.uid, sb.attempt) != (name, namespace, uid, attempt):
                continue
            try:
                client.stop_pod_sandbox(sb.id)
                client.remove_pod_sandbox(sb.id)
            except CriError as exc:
                log.info("pod %s/%s: failed sandbox %s stays for now: %s", namespace, name,
                         sb.id, exc.detail)
                return False
    return True


def sandbox_exists(runtime: Containerd, sandbox_id: str) -> bool:
    with runtime.cri() as client:
        try:
            client.pod_sandbox_status(sandbox_id, verbose=False)
        except CriError as exc:
            if exc.code == "NOT_FOUND":
                return False
            raise
    return True


def pod_exec(pod: Pod | str, *cmd: str, timeout: float = 60.0,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run cmd (a host program) inside the pod's network namespace (a Pod or a netns path)."""
    path = pod.netns_path if isinstance(pod, Pod) else pod
    return run(["nsenter", f"--net={path}", *cmd], what=f"in pod netns {path}",
               timeout=timeout, check=check)


def attach_netns(name: str, netns_path: str) -> None:
    """Name a network namespace in /run/netns, as `ip netns attach` does (bind mount)."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    target = NETNS_DIR / name
    if target.exists():
        raise LabError(f"network namespace name {name} is taken")
    target.touch()
    res = run(["mount", "--bind", netns_path, str(target)], check=False,
              what=f"name {netns_path} {name}")
    if res.returncode != 0:
        target.unlink(missing_ok=True)
        raise LabError(f"cannot name {netns_path} {name}: {res.stderr.strip()}")


def detach_netns(name: str) -> None:
    """Remove the name (the namespace itself lives on while its pod does)."""
    if (NETNS_DIR / name).exists():
        run(["ip", "netns", "del", name], what=f"remove netns name {name}")
