"""Lab tier fixtures: one lab (tests/lab/shape.yaml) per session, torn down at the end.

The lab lives in a pytest tmp dir, or in $YCLOUD_LAB_DIR; YCLOUD_LAB_KEEP=1 leaves it running
after the session (for debugging with `scripts/lab status/exec --dir ...`). Tests are skipped
with the reason when not root or when OVS/OVN binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHAPE = Path(__file__).resolve().parent / "shape.yaml"
if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))

from ycloud_lab import Lab  # noqa: E402

from topology import naming  # noqa: E402

TOOLS = ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl",
         "ovn-controller", "ovn-northd", "ovn-nbctl", "ovn-sbctl", "ip", "ethtool", "ping")


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, veth, OVS)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"lab tests need {', '.join(missing)} (apt-get install ovn-central ovn-host " \
               f"openvswitch-switch iproute2 ethtool iputils-ping)"
    if not Path("/usr/share/openvswitch/vswitch.ovsschema").exists():
        return "lab tests need /usr/share/openvswitch/vswitch.ovsschema (openvswitch-common)"
    return None


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    directory = os.environ.get("YCLOUD_LAB_DIR") or tmp_path_factory.mktemp("lab") / "lab"
    the_lab = Lab(SHAPE, directory)
    try:
        the_lab.up()
    except BaseException:
        the_lab.down()
        raise
    yield the_lab
    if os.environ.get("YCLOUD_LAB_KEEP") != "1":
        the_lab.down()


class NbRows:
    """NB rows written by hand through ovn-nbctl, with the external_ids the controller writes,
    removed (and unplugged) at the end of the test."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.switches: list[str] = []
        self.routers: list[str] = []

    def nbctl(self, *args: str) -> str:
        return self.lab.nbctl(*args)

    def switch(self, name: str) -> str:
        self.switches.append(name)
        self.nbctl("ls-add", name)
        return name

    def router(self, name: str, chassis: str | None = None) -> str:
        self.routers.append(name)
        self.nbctl("lr-add", name)
        if chassis:
            self.nbctl("set", "Logical_Router", name, f"options:chassis={chassis}")
        return name

    def connect(self, router: str, switch: str, mac: str, cidr: str) -> None:
        """Router port <router>-<switch> with cidr (gateway/len) and its peer switch port."""
        lrp, lsp = f"{router}-{switch}", f"{switch}-{router}"
        self.nbctl("lrp-add", router, lrp, mac, cidr, "--", "lsp-add", switch, lsp, "--",
                   "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp, "router",
                   "--", "lsp-set-options", lsp, f"router-port={lrp}")

    def localnet(self, switch: str, network: str) -> None:
        port = f"ln-{switch}"
        self.nbctl("lsp-add", switch, port, "--", "lsp-set-type", port, "localnet", "--",
                   "lsp-set-addresses", port, "unknown", "--",
                   "lsp-set-options", port, f"network_name={network}")

    def port(self, switch: str, name: str, *, mac: str, ips: list[str], node: str,
             gateway: str, cidr: str, role: str = naming.ROLE_POD,
             routes: list[str] | None = None, mtu: int | None = None) -> str:
        """A managed LSP carrying exactly the external_ids the lab CNI reads."""
        ids = {naming.MANAGED_BY: naming.MANAGED_BY_VALUE, naming.ROLE: role,
               naming.NODE: node, naming.GATEWAY: gateway, naming.CIDR: cidr,
               naming.KIND: "Pod", naming.OWNER: f"lab/{name}"}
        if routes:
            ids[naming.ROUTES] = ",".join(routes)
        if mtu:
            ids[naming.MTU] = str(mtu)
        self.nbctl("lsp-add", switch, name, "--",
                   "lsp-set-addresses", name, " ".join([mac, *ips]), "--",
                   "set", "Logical_Switch_Port", name,
                   *(f'external_ids:"{k}"="{v}"' for k, v in ids.items()))
        return name

    def cleanup(self) -> None:
        for router in reversed(self.routers):
            self.nbctl("--if-exists", "lr-del", router)
        for switch in reversed(self.switches):
            self.nbctl("--if-exists", "ls-del", switch)
        self.lab.cni_sync()


@pytest.fixture
def nb(lab: Lab) -> Iterator[NbRows]:
    rows = NbRows(lab)
    yield rows
    rows.cleanup()
