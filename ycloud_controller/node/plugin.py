"""ycloud-cni: the CNI plugin binary (CNI specification 1.0.0), a thin client of the node agent.

The runtime runs it with CNI_COMMAND (ADD, DEL, CHECK, VERSION), CNI_CONTAINERID, CNI_NETNS,
CNI_IFNAME, CNI_ARGS (K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;K8S_POD_UID=..) and CNI_PATH in its
environment and the plugin's network configuration on stdin (cniVersion, name, type, optional
`socket` and `timeoutSeconds`, prevResult on CHECK/DEL). It checks what it can check alone,
hands the request to the node agent over its unix socket and prints the agent's answer: a
result JSON on ADD, nothing on DEL/CHECK success, the spec's error JSON and exit 1 on error.

Only json, os, socket and sys are imported: an ADD pays for a bare interpreter, not the product.
"""

import json
import os
import socket
import sys

SPEC_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
CHECK_SINCE = ("0.4.0", "1.0.0")  # CHECK exists from 0.4.0 on
DEFAULT_SOCKET = "/run/ycloud/cni.sock"
DEFAULT_TIMEOUT = 300.0
# the spec's well-known error codes
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODING = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
}


class PluginError(Exception):
    def __init__(self, code, msg, details=""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def valid_container_id(cid):
    """The spec: non-empty, alphanumeric plus underscore, dot and hyphen."""
    return bool(cid) and all(c.isascii() and (c.isalnum() or c in "_.-") for c in cid)


def valid_ifname(name):
    """The spec (Linux): at most 15 bytes, not . or .., no /, : or whitespace."""
    return (0 < len(name.encode()) <= 15 and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


def parse_cni_args(raw):
    """CNI_ARGS: `K=V;K=V`."""
    out = {}
    for part in (raw or "").split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise PluginError(INVALID_ENV, f"CNI_ARGS: {part!r} is not KEY=VALUE")
        out[key] = value
    return out


def read_config(text):
    """The plugin's network configuration (a whole .conflist is accepted too: its ycloud-cni
    entry is taken, with the list's name and cniVersion, as a runtime would inject them)."""
    try:
        conf = json.loads(text)
    except ValueError as exc:
        raise PluginError(DECODING, "cannot decode the network configuration on stdin",
                          str(exc)) from None
    if not isinstance(conf, dict):
        raise PluginError(DECODING, "the network configuration on stdin is not a JSON object")
    if isinstance(conf.get("plugins"), list):
        mine = [p for p in conf["plugins"] if isinstance(p, dict)
                and p.get("type") == "ycloud-cni"]
        if not mine:
            raise PluginError(INVALID_CONFIG, "the conflist on stdin has no ycloud-cni plugin")
        conf = {**mine[0], "cniVersion": conf.get("cniVersion"), "name": conf.get("name")}
    return conf


def check_version(conf, command):
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise PluginError(INVALID_CONFIG, "the network configuration has no cniVersion")
    if version not in SUPPORTED_VERSIONS:
        raise PluginError(INCOMPATIBLE_VERSION,
                          f"cniVersion {version} is not supported",
                          f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    if command == "CHECK" and version not in CHECK_SINCE:
        raise PluginError(INCOMPATIBLE_VERSION,
                          f"CHECK is not defined for cniVersion {version}",
                          f"CHECK needs one of {', '.join(CHECK_SINCE)}")
    return version


def build_request(env, conf, command):
    if conf.get("ipam"):
        raise PluginError(UNSUPPORTED_FIELD, f"unsupported field ipam={json.dumps(conf['ipam'])}",
                          "ycloud-controller allocates every address; remove ipam")
    for var in REQUIRED_ENV[command]:
        if not env.get(var):
            raise PluginError(INVALID_ENV, f"{var} is not set", f"{command} needs "
                              f"{', '.join(REQUIRED_ENV[command])}")
    cid, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
    if not valid_container_id(cid):
        raise PluginError(INVALID_ENV, f"CNI_CONTAINERID {cid!r} is not a valid container id")
    if not valid_ifname(ifname):
        raise PluginError(INVALID_ENV, f"CNI_IFNAME {ifname!r} is not a valid interface name")
    args = parse_cni_args(env.get("CNI_ARGS"))
    if command != "DEL":
        for key in ("K8S_POD_NAMESPACE", "K8S_POD_NAME"):
            if not args.get(key):
                raise PluginError(INVALID_ENV, f"CNI_ARGS has no {key}",
                                  "ycloud-cni networks Kubernetes pods: the runtime passes "
                                  "K8S_POD_NAMESPACE and K8S_POD_NAME")
    return {"command": command, "containerID": cid, "netns": env.get("CNI_NETNS", ""),
            "ifname": ifname, "podNamespace": args.get("K8S_POD_NAMESPACE", ""),
            "podName": args.get("K8S_POD_NAME", ""), "podUID": args.get("K8S_POD_UID", ""),
            "cniVersion": conf["cniVersion"], "config": conf}


def call_agent(path, request, timeout):
    """One request, one answer, over the agent's unix socket (JSON, newline terminated)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            # a blocking connect waits while the agent's accept queue is full (with a timeout
            # set it would fail at once with EAGAIN); a stale socket is refused at once
            sock.connect(path)
            sock.settimeout(timeout)
        except OSError as exc:
            raise PluginError(TRY_AGAIN_LATER, "the ycloud node agent is not reachable",
                              f"{path}: {exc}") from None
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as exc:
            raise PluginError(IO_FAILURE, "talking to the ycloud node agent failed",
                              f"{path}: {exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError as exc:
        raise PluginError(IO_FAILURE, "the ycloud node agent's answer is not JSON",
                          str(exc)) from None
    if not isinstance(answer, dict):
        raise PluginError(IO_FAILURE, "the ycloud node agent's answer is not a JSON object")
    return answer


def run(env, stdin_text):
    """(exit code, stdout text) of one plugin invocation."""
    version = SPEC_VERSION
    try:
        command = env.get("CNI_COMMAND", "")
        if command not in COMMANDS:
            raise PluginError(INVALID_ENV, f"CNI_COMMAND {command!r} is not one of "
                              f"{', '.join(COMMANDS)}")
        conf = read_config(stdin_text)
        if command == "VERSION":
            return 0, json.dumps({"cniVersion": SPEC_VERSION,
                                  "supportedVersions": list(SUPPORTED_VERSIONS)})
        version = check_version(conf, command)
        request = build_request(env, conf, command)
        timeout = conf.get("timeoutSeconds", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise PluginError(INVALID_CONFIG, "timeoutSeconds must be a positive number")
        socket_path = conf.get("socket", DEFAULT_SOCKET)
        if not isinstance(socket_path, str) or not socket_path:
            raise PluginError(INVALID_CONFIG, "socket must be a path")
        answer = call_agent(socket_path, request, float(timeout))
        if answer.get("error"):
            err = answer["error"]
            raise PluginError(int(err.get("code", IO_FAILURE)), str(err.get("msg", "")),
                              str(err.get("details", "")))
        result = answer.get("result")
        return 0, json.dumps(result) if result is not None else ""
    except PluginError as exc:
        body = {"cniVersion": version, "code": exc.code, "msg": exc.msg}
        if exc.details:
            body["details"] = exc.details
        return 1, json.dumps(body)


def main():
    try:
        stdin_text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        stdin_text = None
        err = json.dumps({"cniVersion": SPEC_VERSION, "code": IO_FAILURE,
                          "msg": "cannot read stdin", "details": str(exc)})
    if stdin_text is None:
        code, out = 1, err
    else:
        code, out = run(os.environ, stdin_text)
    if out:
        sys.stdout.write(out + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
