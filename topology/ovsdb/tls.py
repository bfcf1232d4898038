"""SSL for OVSDB remotes (`ssl:IP:PORT`): the key, certificate and CA files, and a stream
that fails cleanly when the server is not trusted.

python-ovs keeps the SSL files process-wide (class attributes of `ovs.stream.Stream`), so
one process talks SSL with one identity; `configure_ssl` sets them before a connection opens.
Every connection verifies the server's certificate against the CA file (CERT_REQUIRED) and
presents our certificate; host names are not checked, as in OVS itself (ovs-pki
certificates name a switch or controller, not a host).

python-ovs' own `SSLStream.connect` lets every handshake error other than "want read" and
"syscall" escape as an exception: a server whose certificate is not signed by our CA then
left the session in a state where it retried in a busy loop (one error per millisecond, a
full CPU) without ever reporting why. `VerifyingSSLStream` (registered for `ssl:` in place
of python-ovs' class) turns any SSL error into a failed connection (EPROTO, so python-ovs'
reconnect backoff applies), logs one clear line per attempt, and remembers the reason per
remote (`ssl_failure`) so that a caller giving up can say why. TLS errors after the handshake
(with TLS 1.3 a server that refuses our certificate says so in an alert on the first read)
are reported the same way instead of as a bare errno. It also waits for the socket to become
readable (or writable) while the handshake needs it, instead of spinning.

Only file paths are ever logged; key and certificate contents are never read here.
"""

from __future__ import annotations

import errno
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ovs.poller
import ovs.socket_util
import ovs.stream
import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SslConfig:
    private_key: str
    certificate: str
    ca_cert: str

    def __repr__(self) -> str:  # paths only: key material is never read or printed
        return f"SslConfig(key={self.private_key}, cert={self.certificate}, ca={self.ca_cert})"


_lock = threading.Lock()
_failures: dict[str, str] = {}  # remote -> why its last TLS handshake failed


def ssl_failure(remote: str) -> str | None:
    """Why the last TLS handshake with `remote` failed (None: it did not, or not yet)."""
    with _lock:
        return _failures.get(remote)


def _reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return (f"the server's certificate is not trusted ({detail}): it is not signed by the "
                "CA given with --ovn-ssl-ca")
    if isinstance(exc, ssl.SSLEOFError):
        return ("the server closed the TLS connection abruptly (does it trust our "
                "certificate? it must be signed by a CA in the server's --ca-cert)")
    reason = exc.reason or str(exc)
    if "alert" in str(reason).lower():
        return f"the server refused our certificate or protocol ({reason})"
    return f"TLS error ({reason})"


class VerifyingSSLStream(ovs.stream.SSLStream):
    """python-ovs' SSL stream with handshake errors reported, not raised (module doc)."""

    _want: int | None = None  # poll event the pending handshake waits for
    _done = False  # handshake completed

    def connect(self) -> int:
        if self._done:
            return ovs.stream.Stream.connect(self)
        try:
            retval = ovs.stream.Stream.connect(self)  # the TCP part
            if retval:
                return retval
            self.socket.do_handshake()
        except ssl.SSLWantReadError:
            self._want = ovs.poller.POLLIN
            return errno.EAGAIN
        except ssl.SSLWantWriteError:
            self._want = ovs.poller.POLLOUT
            return errno.EAGAIN
        except ssl.SSLError as exc:
            self._want = None
            if isinstance(exc, ssl.SSLSyscallError):
                return ovs.socket_util.get_exception_errno(exc)
            self._failed(_reason(exc), "ovsdb ssl handshake failed; not connecting",
                         log.error)
            return errno.EPROTO
        except OSError as exc:  # the peer went away during the handshake
            self._want = None
            return exc.errno or errno.ECONNRESET
        self._want = None
        self._done = True
        with _lock:
            _failures.pop(self.name, None)
        return 0

    def connect_wait(self, poller: ovs.poller.Poller) -> None:
        if self._want is not None and self.socket is not None:
            poller.fd_wait(self.socket, self._want)
            return
        super().connect_wait(poller)

    def recv(self, n: int) -> tuple[int, bytes | str]:
        # python-ovs maps every SSLError to an errno (SSLError is an OSError): an alert the
        # server sends after a TLS 1.3 handshake (it refused our certificate) became "EPERM"
        try:
            return ovs.stream.Stream._recv(self, n)  # noqa: SLF001 - python-ovs' plain read
        except ssl.SSLWantReadError:
            return errno.EAGAIN, ""
        except ssl.SSLZeroReturnError:
            return 0, ""
        except ssl.SSLSyscallError as exc:
            return ovs.socket_util.get_exception_errno(exc), ""
        except ssl.SSLError as exc:
            self._failed(_reason(exc), "ovsdb ssl connection failed", log.warning)
            return errno.EPROTO, ""
        except OSError as exc:
            return ovs.socket_util.get_exception_errno(exc), ""

    def send(self, buf: bytes | str | memoryview) -> int:
        try:
            return ovs.stream.Stream._send(self, buf)  # noqa: SLF001 - python-ovs' plain write
        except ssl.SSLWantWriteError:
            return -errno.EAGAIN
        except ssl.SSLSyscallError as exc:
            return -ovs.socket_util.get_exception_errno(exc)
        except ssl.SSLError as exc:
            self._failed(_reason(exc), "ovsdb ssl connection failed", log.warning)
            return -errno.EPROTO
        except OSError as exc:
            return -ovs.socket_util.get_exception_errno(exc)

    def _failed(self, reason: str, event: str, emit: Callable[..., Any]) -> None:
        with _lock:
            _failures[self.name] = reason
        emit(event, remote=self.name, reason=reason)


ovs.stream.Stream.register_method("ssl", VerifyingSSLStream)


def configure_ssl(ssl_config: SslConfig | None) -> None:
    """python-ovs keeps SSL files process-wide; set them before connecting to ssl: remotes."""
    if ssl_config is None:
        return
    with _lock:
        ovs.stream.Stream.ssl_set_private_key_file(ssl_config.private_key)
        ovs.stream.Stream.ssl_set_certificate_file(ssl_config.certificate)
        ovs.stream.Stream.ssl_set_ca_cert_file(ssl_config.ca_cert)
