"""containerd for one lab chassis: a private root, state dir, socket and config file, inside the
chassis' network namespace, stopped by pid with nothing left behind.

A node runs one containerd, and containerd execs the CNI plugin in its own network namespace
(the plugin moves the pod's end of its interface from there into the pod's netns). Each lab
chassis is a network namespace, so its containerd runs there: `nsenter --net=/run/netns/<ns>`
(network namespace only: its mounts stay in the host's mount namespace, where `mount` shows
them and `stop()` can check that none is left).

Everything lives in `directory`: config.toml, root/, state/ (CRI pod netns mounts too:
`netns_mounts_under_state_dir`), runc/ (runc's state), containerd.sock(.ttrpc),
containerd.log, containerd.pid. Nothing under /var/lib/containerd, /run/containerd or
/etc/containerd is read or written by the daemon (but see `SHIM_SOCKET_DIR`). The CRI plugin
takes the CNI bin and conf dirs and the sandbox image from config.toml; the sandbox image is
built from busybox-static (image.py) and imported with `ctr images import`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ovn_sandbox import pid_alive, read_pid

from ycloud_lab.cri import CriClient, CriError, PodSpec
from ycloud_lab.image import SANDBOX_IMAGE, build_image
from ycloud_lab.netns import _terminate
from ycloud_lab.proc import LabError, ProcRecord, cmdline, run

log = logging.getLogger("ycloud_lab")

CRI_NAMESPACE = "k8s.io"  # containerd namespace the CRI plugin works in
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "nsenter", "busybox")
# containerd 1.6 puts every shim's socket in /run/containerd/s/<sha256(...)>, whatever its
# state dir (runtime/v2/shim/util_unix.go: socketRoot = defaults.DefaultStateDir); the shim
# removes its socket when it exits. `stop()` checks that none of ours is left.
SHIM_SOCKET_DIR = Path("/run/containerd/s")
CGROUP_ROOT = Path("/sys/fs/cgroup")
DISABLED_PLUGINS = ("io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@dataclass(frozen=True)
class RuntimeConfig:
    """Where one containerd lives and what its CRI plugin uses."""

    directory: Path
    cni_conf_dir: Path  # holds the .conflist the CRI plugin loads (the first by name)
    cni_bin_dir: Path = CNI_BIN_DIR  # where the CRI plugin finds the plugins (CNI_PATH)
    netns: str | None = None  # chassis network namespace name (None: the host's)
    sandbox_image: str = SANDBOX_IMAGE
    snapshotter: str = "overlayfs"
    log_level: str = "info"  # containerd's; "debug" logs every sandbox spec
    # cgroup (cgroupfs) parent of this containerd's pods: `pod()` sets it, `stop()` removes it
    cgroup_parent: str = ""

    @property
    def pod_cgroup_parent(self) -> str:
        if self.cgroup_parent:
            return self.cgroup_parent
        tag = hashlib.blake2b(str(self.directory).encode(), digest_size=4).hexdigest()
        return f"/ycloud-lab/{tag}"

    @property
    def socket(self) -> Path:
        return self.directory / "containerd.sock"

    def toml(self) -> str:
        if len(str(self.socket)) + len(".ttrpc") > 107:  # sun_path is 108 bytes
            raise LabError(f"containerd socket path too long for a unix socket: {self.socket}")
        d = self.directory
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        q = _quote
        return "\n".join([
            "version = 2",
            f"root = {q(d / 'root')}",
            f"state = {q(d / 'state')}",
            "disabled_plugins = [" + ", ".join(q(p) for p in DISABLED_PLUGINS) + "]",
            "[grpc]", f"address = {q(self.socket)}",
            "[ttrpc]", f"address = {q(str(self.socket) + '.ttrpc')}",
            "[debug]", 'address = ""', f"level = {q(self.log_level)}",
            "[metrics]", 'address = ""',
            cri,
            f"sandbox_image = {q(self.sandbox_image)}",
            "netns_mounts_under_state_dir = true",
            "disable_apparmor = true",
            "enable_selinux = false",
            "restrict_oom_score_adj = true",  # no CAP_SYS_RESOURCE here: see the README
            'stream_server_address = "127.0.0.1"', 'stream_server_port = "0"',
            "enable_cdi = false",
            f"{cri[:-1]}.containerd]",
            f"snapshotter = {q(self.snapshotter)}", 'default_runtime_name = "runc"',
            f"{cri[:-1]}.containerd.runtimes.runc]",
            'runtime_type = "io.containerd.runc.v2"',
            f"{cri[:-1]}.containerd.runtimes.runc.options]",
            f"Root = {q(d / 'runc')}",
            f"{cri[:-1]}.cni]",
            f"bin_dir = {q(self.cni_bin_dir)}",
            f"conf_dir = {q(self.cni_conf_dir)}",
            "max_conf_num = 1",
            "",
        ])


def _quote(value: object) -> str:
    text = str(value)
    if '"' in text or "\\" in text or "\n" in text:
        raise LabError(f"containerd config: unsupported character in {text!r}")
    return f'"{text}"'


class Containerd:
    """One private containerd. `start()` launches it (in cfg.netns), waits until its CRI
    answers and imports the sandbox image; `stop()` removes every sandbox through CRI, stops
    the daemon by pid, ends its shims and returns what it had to clean up."""

    def __init__(self, cfg: RuntimeConfig, name: str = "containerd"):
        self.cfg = cfg
        self.name = name
        self.dir = cfg.directory
        self.pidfile = self.dir / "containerd.pid"
        self.logfile = self.dir / "containerd.log"
        self.config_path = self.dir / "config.toml"

    @property
    def socket(self) -> Path:
        return self.cfg.socket

    @property
    def marker(self) -> str:
        return str(self.config_path)

    def pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid is not None and pid_alive(pid, self.marker) else None

    def record(self) -> ProcRecord:
        return ProcRecord(name=f"{self.name}/containerd", pid=self.pid() or 0,
                          marker=self.marker, namespace=self.cfg.netns,
                          logfile=str(self.logfile), pidfile=str(self.pidfile))

    def cri(self, timeout: float = 60.0) -> CriClient:
        return CriClient(self.socket, timeout=timeout)

    def pod(self, name: str, namespace: str, uid: str, **kwargs: object) -> PodSpec:
        """A PodSpec as kubelet fills it on this node: the pod's cgroup under this containerd's
        parent, its log directory under this containerd's directory."""
        kwargs.setdefault("cgroup_parent", f"{self.cfg.pod_cgroup_parent}/pod{uid}")
        kwargs.setdefault("log_directory", str(self.dir / "pods" / f"{namespace}_{name}_{uid}"))
        return PodSpec(name=name, namespace=namespace, uid=uid, **kwargs)  # type: ignore[arg-type]

    def ctr(self, *args: str, timeout: float = 60.0) -> str:
        res = run(["ctr", "--address", str(self.socket), "--namespace", CRI_NAMESPACE, *args],
                  what=f"{self.name}: ctr", timeout=timeout, logfile=self.logfile)
        return res.stdout

    # -- start ------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> ProcRecord:
        if self.pid() is not None:
            return self.record()
        missing = missing_tools()
        if missing:
            raise LabError(f"{self.name}: missing {', '.join(missing)} (apt-get install "
                           "containerd runc containernetworking-plugins busybox-static)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.cfg.toml())
        self.socket.unlink(missing_ok=True)
        cmd = ["containerd", "--config", str(self.config_path)]
        if self.cfg.netns:
            cmd = ["nsenter", f"--net=/run/netns/{self.cfg.netns}", *cmd]
        with open(self.logfile, "ab") as logf:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    start_new_session=True, cwd=self.dir)
        # nsenter execs containerd: the pid is containerd's
        self.pidfile.write_text(f"{proc.pid}\n")
        try:
            self._wait_ready(proc, timeout)
            self.import_sandbox_image()
        except BaseException:
            self.stop()
            raise
        log.info("%s: containerd pid %d on %s", self.name, proc.pid, self.socket)
        return self.record()

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"{self.name}: containerd exited ({proc.returncode}); "
                               f"see {self.logfile}")
            if self.socket.exists():
                with self.cri(timeout=2.0) as client:
                    try:
                        client.version()
                        return
                    except CriError as exc:
                        last = str(exc)
            time.sleep(0.1)
        raise LabError(f"{self.name}: CRI not answering on {self.socket} after {timeout:.0f}s "
                       f"({last}); see {self.logfile}")

    def import_sandbox_image(self) -> None:
        """Build (once per directory) and import the sandbox image unless it is there."""
        if self.cfg.sandbox_image in self.ctr("images", "list", "--quiet").split():
            return
        archive = self.dir / "sandbox-image.tar"
        build_image(archive, self.cfg.sandbox_image)
        self.ctr("images", "import", str(archive), timeout=120)  # unpacked: CRI must not pull

    # -- stop -------------------------------------------------------------------------------
    def remove_all_sandboxes(self) -> list[str]:
        removed = []
        with self.cri(timeout=60.0) as client:
            for sb in client.list_pod_sandbox():
                client.stop_pod_sandbox(sb.id)
                client.remove_pod_sandbox(sb.id)
                removed.append(f"{sb.namespace}/{sb.name}")
        return removed

    def shim_pids(self) -> list[int]:
        """containerd-shim-runc-v2 processes started by this containerd (its socket address
        is on their command line)."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                line = cmdline(int(entry.name))
                if "containerd-shim" in line and f"-address {self.socket} " in f"{line} ":
                    out.append(int(entry.name))
        return out

    def pod_pids(self) -> list[int]:
        """Processes in this containerd's pod cgroups."""
        pids: set[int] = set()
        for path in self.cgroups():
            try:
                pids.update(int(p) for p in (path / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return sorted(pids)

    def mounts(self) -> list[str]:
        """Mount points under this containerd's directory (host mount namespace)."""
        prefix = str(self.dir.resolve()) + "/"
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return [p for p in points if p.startswith(prefix)]

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop everything this containerd started; returns what was left and cleaned up
        (empty when the CRI removals and the daemon's own shutdown cleaned everything)."""
        leftovers: list[str] = []
        pid = self.pid()
        if pid is not None and self.socket.exists():
            try:
                self.remove_all_sandboxes()
            except CriError as exc:
                leftovers.append(f"sandbox removal: {exc}")
        if pid is not None:
            _terminate(pid, timeout)
        # a containerd that died (or was killed with its chassis namespace) left its pods
        # running: their processes are found by cgroup, their shims by command line
        for proc in self.pod_pids():
            leftovers.append(f"pod process {proc} ({cmdline(proc)})")
            _terminate(proc, timeout)
        for shim in self.shim_pids():
            leftovers.append(f"shim pid {shim}")
            sock = shim_socket(self.socket, cmdline(shim))
            _terminate(shim, timeout)
            if sock and sock.exists():
                leftovers.append(f"shim socket {sock}")
                sock.unlink()
        for point in sorted(self.mounts(), key=len, reverse=True):
            leftovers.append(f"mount {point}")
            run(["umount", "-l", point], check=False, what=f"{self.name}: umount")
        leftovers += self._remove_cgroups()
        _rmdir_empty(SHIM_SOCKET_DIR, SHIM_SOCKET_DIR.parent.parent)  # /run/containerd/s
        self.pidfile.unlink(missing_ok=True)
        for path in (self.socket, Path(f"{self.socket}.ttrpc")):
            path.unlink(missing_ok=True)
        if leftovers:
            log.warning("%s: cleaned up after containerd: %s", self.name, leftovers)
        return leftovers

    def cgroups(self) -> list[Path]:
        """This containerd's pod cgroup directories (every v1 hierarchy and v2), deepest first."""
        rel = self.cfg.pod_cgroup_parent.strip("/")
        found = [p for base in CGROUP_ROOT.glob("*/") for p in [base / rel] if p.is_dir()]
        if (CGROUP_ROOT / rel).is_dir():
            found.append(CGROUP_ROOT / rel)
        subdirs = [d for p in found for d in p.rglob("*") if d.is_dir()]
        return sorted([*found, *subdirs], key=lambda p: len(p.parts), reverse=True)

    def _remove_cgroups(self) -> list[str]:
        """rmdir this containerd's cgroups (their parents too, when empty); a cgroup still
        holding a pod's cgroup is a leftover and is reported."""
        leftovers = []
        for path in self.cgroups():
            if any(d.is_dir() for d in path.iterdir()):
                continue
            try:
                path.rmdir()
            except OSError as exc:
                leftovers.append(f"cgroup {path}: {exc.strerror}")
        for base in [*CGROUP_ROOT.glob("*/"), CGROUP_ROOT]:
            _rmdir_empty(base / self.cfg.pod_cgroup_parent.strip("/").split("/")[0], base)
        return leftovers

    def purge(self) -> None:
        """Stop, then delete the whole directory (root, state, images)."""
        self.stop()
        if self.mounts():
            raise LabError(f"{self.name}: mounts remain under {self.dir}: {self.mounts()}")
        shutil.rmtree(self.dir, ignore_errors=True)


def chassis_runtime(chassis_dir: str | Path, namespace: str, *,
                    cni_bin: Path | None = None, cni_conf: Path | None = None,
                    name: str = "") -> Containerd:
    """The containerd of one lab chassis (a node): directory `<chassis dir>/containerd`, run in
    the chassis namespace; CNI dirs default to `<chassis dir>/cni/bin` and
    `<chassis dir>/cni/net.d`, the chassis' stand-ins for /opt/cni/bin and /etc/cni/net.d
    (where a CNI DaemonSet installs its plugin and writes its conflist)."""
    base = Path(chassis_dir)
    cfg = RuntimeConfig(directory=base / "containerd", netns=namespace,
                        cni_bin_dir=cni_bin or base / "cni" / "bin",
                        cni_conf_dir=cni_conf or base / "cni" / "net.d")
    return Containerd(cfg, name or base.name)


def cni_bin_dir(directory: Path, plugins: Mapping[str, Path] | None = None,
                stock: tuple[str, ...] = ("loopback",)) -> Path:
    """A private CNI bin dir: symlinks to the stock plugins named (the CRI plugin always runs
    `loopback` for the pod's lo) and to the given plugins (name -> executable), e.g.
    {"ycloud-cni": <venv>/bin/ycloud-cni}. Returns directory."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {name: CNI_BIN_DIR / name for name in stock} | dict(plugins or {})
    for name, target in wanted.items():
        link = directory / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return directory


def write_conflist(conf_dir: Path, name: str, plugins: list[dict[str, object]],
                   cni_version: str = "1.0.0", filename: str = "") -> Path:
    """Write `<conf_dir>/10-<name>.conflist` (the CRI plugin loads the first by name)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / (filename or f"10-{name}.conflist")
    path.write_text(json.dumps({"cniVersion": cni_version, "name": name, "plugins": plugins},
                               indent=2) + "\n")
    return path


def shim_socket(address: Path, shim_cmdline: str) -> Path | None:
    """Where containerd 1.6 put a shim's socket: SHIM_SOCKET_DIR/sha256(<containerd address>/
    <namespace>/<id>) (runtime/v2/shim/util_unix.go SocketAddress), from the shim's
    `-namespace NS -id ID` arguments."""
    args = shim_cmdline.split()
    opts = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("-")}
    if "-namespace" not in opts or "-id" not in opts:
        return None
    key = f"{address}/{opts['-namespace']}/{opts['-id']}"
    return SHIM_SOCKET_DIR / hashlib.sha256(key.encode()).hexdigest()


def _rmdir_empty(path: Path, stop_at: Path) -> None:
    """rmdir path and its parents up to (not including) stop_at while they are empty dirs."""
    while path != stop_at and stop_at in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent
