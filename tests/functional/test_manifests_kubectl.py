"""`kubectl apply --dry-run=client -k manifests/` (everything deployable, through its
kustomization), against FakeKube's discovery, then a real apply of the CRDs and the example
objects (served back through kubectl get)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fakekube.server import FakeKube

from ycloud_controller.kube import resources as res
from ycloud_controller.kube.resources import Resource

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
# what manifests/ holds besides the resources the controller itself uses
DEPLOYMENT_KINDS = (
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("apps", "v1", "deployments", "Deployment", True, True),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
             False),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
)

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH "
                                                        "(scripts/install-deps installs it)")


def kubectl(fake: FakeKube, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    env = dict(os.environ, KUBECONFIG=str(tmp / "none"), HOME=str(tmp))
    return subprocess.run([KUBECTL, args[0], "--server", fake.url, "--insecure-skip-tls-verify",
                           *args[1:]], capture_output=True, text=True, env=env, timeout=120)


def test_dry_run_of_every_deployable_manifest(tmp_path: Path) -> None:
    with FakeKube(resources=(*res.ALL, *DEPLOYMENT_KINDS)) as fake:
        out = kubectl(fake, tmp_path, "apply", "--dry-run=client", "-k", str(ROOT / "manifests"))
        assert out.returncode == 0, out.stderr
        for name in ("deployment.apps/ycloud-controller", "serviceaccount/ycloud-controller",
                     "clusterrole.rbac.authorization.k8s.io/ycloud-controller",
                     "customresourcedefinition.apiextensions.k8s.io/yusurservices.iaas.yusur.io",
                     "configmap/ycloud-config", "namespace/ycloud-system",
                     "daemonset.apps/ycloud-node", "serviceaccount/ycloud-node",
                     "clusterrole.rbac.authorization.k8s.io/ycloud-node",
                     "clusterrolebinding.rbac.authorization.k8s.io/ycloud-node",
                     "configmap/ycloud-node-config", "namespace/ycloud-node"):
            assert f"{name} created (dry run)" in out.stdout, name


def test_crds_then_examples_apply_and_read_back(tmp_path: Path) -> None:
    with FakeKube(resources=(*res.ALL, *DEPLOYMENT_KINDS)) as fake:
        crds = kubectl(fake, tmp_path, "apply", "-f", str(ROOT / "manifests" / "crds"))
        assert crds.returncode == 0, crds.stderr
        examples = kubectl(fake, tmp_path, "apply", "-f", str(ROOT / "manifests" / "examples"))
        assert examples.returncode == 0, examples.stderr
        got = kubectl(fake, tmp_path, "get", "yusurservices", "-A", "-o", "name")
        assert set(got.stdout.split()) == {"yusurservice.iaas.yusur.io/ysvc1",
                                           "yusurservice.iaas.yusur.io/multi"}
