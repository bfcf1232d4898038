"""kubectl, the fakekube process and make_api_client against FakeKube."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fakekube import FakeKube
from kubernetes import client

from ycloud_controller.kube.backend import ApiBackend
from ycloud_controller.kube.client import KubeConfigError, make_api_client
from ycloud_controller.kube.errors import ApiError
from ycloud_controller.kube.resources import CONFIGMAPS, NAMESPACES, VPCS

REPO = Path(__file__).resolve().parents[3]
KUBECTL = shutil.which("kubectl")

MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
data:
  mode: ovn
---
apiVersion: iaas.yusur.io/v1
kind: Vpc
metadata:
  name: vpc1
spec:
  namespaces: [default]
"""


def kubectl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
def test_kubectl_apply_dry_run_and_get(fake: FakeKube, tmp_path: Path) -> None:
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(MANIFEST)
    # no user kubeconfig may leak in; the cloud-sdk kubectl wants flags after the verb
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "none"), HOME=str(tmp_path))
    server = ["--server", fake.url, "--insecure-skip-tls-verify"]
    dry = kubectl("apply", *server, "--dry-run=client", "-f", str(manifest), env=env)
    assert dry.returncode == 0, dry.stderr
    assert "configmap/settings created (dry run)" in dry.stdout
    assert "vpc.iaas.yusur.io/vpc1 created (dry run)" in dry.stdout
    assert fake.store.list(VPCS)[0] == []
    applied = kubectl("apply", *server, "-f", str(manifest), env=env)
    assert applied.returncode == 0, applied.stderr
    assert fake.store.get(CONFIGMAPS, "settings", "default")["data"] == {"mode": "ovn"}
    got = kubectl("get", *server, "vpcs", "-o", "name", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["vpc.iaas.yusur.io/vpc1"]
    namespaces = kubectl("get", *server, "ns", "--no-headers", env=env)
    assert "kube-system" in namespaces.stdout
    manifest.write_text(MANIFEST.replace("mode: ovn", "mode: ovn-ic"))
    again = kubectl("apply", *server, "-f", str(manifest), env=env)
    assert again.returncode == 0, again.stderr
    assert "configmap/settings configured" in again.stdout
    assert fake.store.get(CONFIGMAPS, "settings", "default")["data"] == {"mode": "ovn-ic"}


def test_fakekube_as_a_process(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakekube", "--port", "0", "--kubeconfig", str(kubeconfig)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api_client = make_api_client(str(kubeconfig), in_cluster=False)
        assert api_client.configuration.host == url
        names = [n["metadata"]["name"] for n in ApiBackend(api_client).list(NAMESPACES)[0]]
        assert "default" in names
        api_client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_make_api_client_uses_a_private_configuration(fake: FakeKube, tmp_path: Path) -> None:
    path = fake.write_kubeconfig(tmp_path / "config")
    default_before = client.Configuration.get_default_copy().host
    api_client = make_api_client(str(path), in_cluster=False, context="fakekube")
    assert api_client.configuration.host == fake.url
    assert client.Configuration.get_default_copy().host == default_before
    assert client.CoreV1Api(api_client).list_namespace().items
    api_client.close()


def test_make_api_client_errors_are_clear(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeConfigError, match="cannot load kubeconfig"):
        make_api_client(str(tmp_path / "missing"), in_cluster=False)
    with pytest.raises(KubeConfigError, match="in-cluster"):
        make_api_client(None, in_cluster=True)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "also-missing"))
    with pytest.raises(KubeConfigError) as exc:
        make_api_client(None, in_cluster=False)
    assert "kubeconfig" in str(exc.value) and "in-cluster" in str(exc.value)


def test_fakekube_counts_requests_by_verb_and_resource(fake: FakeKube,
                                                       backend: ApiBackend) -> None:
    from fakekube.server import count_delta, writes
    before = fake.counts()
    backend.create(VPCS, {"metadata": {"name": "v1"}})
    vpc = backend.get(VPCS, "v1")
    backend.list(VPCS)
    backend.patch(VPCS, "v1", None, {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiError):  # a 409 (vpc is older than the patch): counted
        backend.update(VPCS, {**vpc, "spec": {"namespaces": ["x"]}})
    backend.patch(VPCS, "v1", None, {"status": {"router": "r"}}, "status")
    with pytest.raises(ApiError):
        backend.patch(CONFIGMAPS, "missing", "default", {"data": {}})  # a 404: counted
    watch = backend.watch(VPCS, None, timeout_seconds=1)
    watch.close()
    backend.delete(VPCS, "v1")
    delta = count_delta(before, fake.counts())
    assert delta == {
        "create vpcs.iaas.yusur.io": 1, "delete vpcs.iaas.yusur.io": 1,
        "get vpcs.iaas.yusur.io": 1, "list vpcs.iaas.yusur.io": 1,
        "patch configmaps": 1, "patch vpcs.iaas.yusur.io": 1,
        "patch vpcs.iaas.yusur.io/status": 1, "update vpcs.iaas.yusur.io": 1,
        "watch vpcs.iaas.yusur.io": 1,
    }
    assert sum(writes(delta).values()) == 6
    assert fake.writes_per_object()[("vpcs.iaas.yusur.io", "", "v1")] == 4  # create counted apart
    # the same counts over HTTP, for a FakeKube in another process; reading them is uncounted
    http = json.loads(urllib.request.urlopen(f"{fake.url}/debug/requests").read())
    assert http == fake.request_report() and http["requests"] == fake.counts()
    assert http["written_more_than_once"]["vpcs.iaas.yusur.io v1"] == 4
    urllib.request.urlopen(urllib.request.Request(f"{fake.url}/debug/requests",
                                                  method="DELETE")).read()
    assert fake.counts() == {} and fake.writes_per_object() == {}
