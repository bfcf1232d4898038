"""NB over SSL (issue 9, security): keys, certificates and CAs made by `ovs-pki` here.

Two ovsdb-servers with the OVN NB schema listen on `pssl:` in a private directory: one with a
server certificate signed by our CA, one ("rogue") with a certificate signed by another CA.
The controller runs as users run it (`ycloud-controller sync --once`, a subprocess: python-ovs
keeps SSL files process-wide) against FakeKube with a bearer-token kubeconfig, at debug level:

- with the trusted server it converges and NB holds its rows (read with ovn-nbctl on the
  server's unix socket);
- with the rogue server it refuses the connection: it exits non-zero within its timeout, says
  why in one clear log line per attempt (no busy loop), and not one row is written;
- in both runs nothing it prints contains the private key, a certificate, or the token.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fakekube.server import FakeKube
from ovn_sandbox import NB_SCHEMA, free_port, read_pid, stop_pid, wait_for_socket

from tests.functional.bad_input.support import create

ROOT = Path(__file__).resolve().parents[2]
GROUP = "iaas.yusur.io/v1"
OBJECTS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-ssl"}},
    {"apiVersion": GROUP, "kind": "Vpc", "metadata": {"name": "vpcssl"},
     "spec": {"namespaces": ["ns-ssl"]}},
    {"apiVersion": GROUP, "kind": "Subnet", "metadata": {"name": "subnetssl"},
     "spec": {"vpc": "vpcssl", "cidrBlock": "10.77.1.0/24", "gateway": "10.77.1.1",
              "namespaces": ["ns-ssl"]}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "ns-ssl"},
     "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]}},
]


@dataclass(frozen=True)
class Pki:
    ca: Path  # CA that signs NB servers (the client's --ovn-ssl-ca)
    client_ca: Path  # CA that signs clients (the server's --ca-cert)
    server_key: Path
    server_cert: Path
    client_key: Path
    client_cert: Path
    rogue_key: Path  # a server certificate signed by another CA
    rogue_cert: Path


def _pki(directory: Path, *args: str) -> None:
    subprocess.run(["ovs-pki", f"--dir={directory}", f"--log={directory}.log", *args],
                   check=True, capture_output=True, cwd=directory.parent, timeout=120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("ovs-pki") is None:
        pytest.skip("ovs-pki missing (openvswitch-common)")
    base = tmp_path_factory.mktemp("pki")
    good, rogue = base / "pki", base / "rogue-pki"
    _pki(good, "init")
    _pki(good, "-u", "-b", "req+sign", "server", "controller")
    _pki(good, "-u", "-b", "req+sign", "client", "switch")
    _pki(rogue, "init")
    _pki(rogue, "-u", "-b", "req+sign", "rogue", "controller")
    return Pki(ca=good / "controllerca" / "cacert.pem",
               client_ca=good / "switchca" / "cacert.pem",
               server_key=base / "server-privkey.pem", server_cert=base / "server-cert.pem",
               client_key=base / "client-privkey.pem", client_cert=base / "client-cert.pem",
               rogue_key=base / "rogue-privkey.pem", rogue_cert=base / "rogue-cert.pem")


class SslNb:
    """An ovsdb-server with the NB schema on pssl:PORT:127.0.0.1 and a unix socket, in its
    own directory; stopped by its recorded pid."""

    def __init__(self, directory: Path, key: Path, cert: Path, client_ca: Path):
        self.dir = directory
        self.dir.mkdir(parents=True)
        self.db = directory / "nb.db"
        self.sock = directory / "nb.sock"
        self.pidfile = directory / "nb.pid"
        self.port = free_port()
        subprocess.run(["ovsdb-tool", "create", str(self.db), NB_SCHEMA], check=True,
                       capture_output=True)
        subprocess.run([
            "ovsdb-server", str(self.db), "--detach", "--no-chdir",
            f"--pidfile={self.pidfile}", f"--log-file={directory / 'nb.log'}",
            f"--unixctl={directory / 'nb.ctl'}", f"--remote=punix:{self.sock}",
            f"--remote=pssl:{self.port}:127.0.0.1", f"--private-key={key}",
            f"--certificate={cert}", f"--ca-cert={client_ca}",
        ], check=True, capture_output=True, env=dict(os.environ, OVS_RUNDIR=str(directory)))
        wait_for_socket(self.sock)
        self._wait_listening()

    @property
    def remote(self) -> str:
        return f"ssl:127.0.0.1:{self.port}"

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def nbctl(self, *args: str) -> str:
        return subprocess.run(["ovn-nbctl", f"--db=unix:{self.sock}", *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    def names(self, table: str) -> set[str]:
        data = json.loads(self.nbctl("--format=json", "--columns=name", "list", table))
        return {row[0] for row in data["data"]}

    def stop(self) -> None:
        pid = read_pid(self.pidfile)
        if pid is not None:
            stop_pid(pid, str(self.db))


@pytest.fixture
def servers(pki: Pki, tmp_path: Path) -> Iterator[tuple[SslNb, SslNb]]:
    good = SslNb(tmp_path / "good", pki.server_key, pki.server_cert, pki.client_ca)
    try:
        rogue = SslNb(tmp_path / "rogue", pki.rogue_key, pki.rogue_cert, pki.client_ca)
    except BaseException:
        good.stop()
        raise
    try:
        yield good, rogue
    finally:
        good.stop()
        rogue.stop()


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, Path, str]]:
    """FakeKube with the objects, and a kubeconfig that authenticates with a bearer token."""
    token = "ycloud-test-token-" + secrets.token_hex(24)
    with FakeKube(bookmark_interval=0.5) as fake:
        create(fake, OBJECTS)
        config = fake.kubeconfig()
        config["users"][0]["user"] = {"token": token}
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield fake, path, token


def sync_once(remote: str, pki: Pki, kubeconfig: Path, timeout: float = 60,
              key: Path | None = None, cert: Path | None = None
              ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ycloud_controller.cli", "sync", "--once",
           "--timeout", str(timeout), "--kubeconfig", str(kubeconfig),
           "--ovn-nb-db", remote, "--ovn-ssl-key", str(key or pki.client_key),
           "--ovn-ssl-cert", str(cert or pki.client_cert), "--ovn-ssl-ca", str(pki.ca),
           "--log-format", "json", "--log-level", "debug"]
    env = {k: v for k, v in os.environ.items() if k not in ("OVN_NB_DB", "OVN_SB_DB")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120,
                          cwd=ROOT, env=env)


def pem_bodies(path: Path) -> list[str]:
    """The base64 lines of every PEM block of a file."""
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("-----")]


def assert_no_secrets(out: subprocess.CompletedProcess, pki: Pki, token: str) -> None:
    text = out.stdout + out.stderr
    assert token not in text, "the kubeconfig's bearer token is in the output"
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    for path in (pki.client_key, pki.client_cert, pki.ca, pki.server_cert, pki.rogue_key,
                 pki.rogue_cert):
        body = pem_bodies(path)
        assert body, path
        leaked = [line for line in body if line in text]
        assert not leaked, f"{path.name}: {len(leaked)} PEM lines in the output"
        assert "".join(body)[:40] not in text.replace("\\n", "").replace("\n", "")


def test_trusted_server_gets_rows_and_nothing_secret_is_logged(
        pki: Pki, servers: tuple[SslNb, SslNb], kube: tuple[FakeKube, Path, str]) -> None:
    good, _ = servers
    _, kubeconfig, token = kube
    out = sync_once(good.remote, pki, kubeconfig)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "converged" in out.stdout
    assert {"vpc-vpcssl", "ovn-cluster"} <= good.names("Logical_Router")
    assert "subnetssl" in good.names("Logical_Switch")
    assert "web.ns-ssl" in good.names("Logical_Switch_Port")
    assert_no_secrets(out, pki, token)
    # a second run over SSL finds nothing to write
    again = sync_once(good.remote, pki, kubeconfig)
    assert again.returncode == 0 and "converged" in again.stdout, again.stderr[-3000:]
    assert_no_secrets(again, pki, token)


def test_server_signed_by_another_ca_is_refused(
        pki: Pki, servers: tuple[SslNb, SslNb], kube: tuple[FakeKube, Path, str]) -> None:
    _, rogue = servers
    _, kubeconfig, token = kube
    out = sync_once(rogue.remote, pki, kubeconfig, timeout=8)
    assert out.returncode != 0, out.stdout
    failures = [json.loads(line) for line in out.stderr.splitlines()
                if "ovsdb ssl handshake failed" in line]
    assert failures, out.stderr[-3000:]
    assert failures[0]["remote"] == rogue.remote
    assert re.search(r"not signed by the CA", failures[0]["reason"])
    # one line per attempt, with reconnect backoff between attempts: no busy loop
    assert len(failures) < 30, f"{len(failures)} handshake attempts"
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ycloud-controller: no NB connection") and "not trusted" in last
    for table in ("Logical_Router", "Logical_Switch", "Logical_Switch_Port", "Load_Balancer",
                  "Load_Balancer_Group"):
        assert not rogue.names(table), table
    assert_no_secrets(out, pki, token)


def test_server_that_does_not_trust_our_certificate_gets_nothing(
        pki: Pki, servers: tuple[SslNb, SslNb], kube: tuple[FakeKube, Path, str]) -> None:
    """The other direction: our certificate is signed by a CA the server does not trust. The
    server ends the connection after the handshake; the controller says so and gives up."""
    good, _ = servers
    _, kubeconfig, token = kube
    out = sync_once(good.remote, pki, kubeconfig, timeout=8, key=pki.rogue_key,
                    cert=pki.rogue_cert)
    assert out.returncode != 0, out.stdout
    assert "ovsdb ssl connection failed" in out.stderr, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith("ycloud-controller: no NB connection")
    for table in ("Logical_Router", "Logical_Switch", "Logical_Switch_Port"):
        assert not good.names(table), table
    assert_no_secrets(out, pki, token)
