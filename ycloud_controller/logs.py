"""structlog setup: JSON lines in-cluster, readable console output in a terminal.

Secrets never reach a log line: the controller logs paths of key and certificate files, never
their contents, and no token or kubeconfig. As a second line of defence every event (and every
record of the standard library's loggers: python-ovs, ovsdbapp, urllib3, kubernetes) passes
through `redact`: values of keys that name a secret (token, password, authorization, ...),
PEM blocks and bearer tokens inside any string are replaced. Tracebacks are printed plain,
without local variables (a rich traceback would show them).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(token|passw|secret|authorization|api_?key|private_?key|"
                         r"client_?key|credential|bearer)", re.IGNORECASE)
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?(-----END \1-----|\Z)", re.DOTALL)
_BEARER = re.compile(r"\b(Bearer|Basic) +[A-Za-z0-9._~+/=-]{8,}")


def redact_text(text: str) -> str:
    """`text` with PEM blocks and bearer/basic credentials replaced."""
    if "-----BEGIN" in text:
        text = _PEM.sub(lambda m: f"[redacted {m.group(1).lower()}]", text)
    if "Bearer" in text or "Basic" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", b""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if type(value) in (list, tuple):  # a named tuple (an NB Owner, RowId) renders itself
        return type(value)(_redact_value(key, v) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
           ) -> MutableMapping[str, Any]:
    """structlog processor: see the module docstring."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(key, value)
    return event_dict


class _RedactFilter(logging.Filter):
    """The same for standard library records (message rendered, then redacted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def configure(fmt: str | None = None, level: str = "info") -> None:
    """fmt: 'json' | 'console' | None (console on a terminal, JSON otherwise)."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    lvl = getattr(logging, level.upper(), None)
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer = (structlog.processors.JSONRenderer() if fmt == "json"
                else structlog.dev.ConsoleRenderer(
                    colors=sys.stderr.isatty(),
                    exception_formatter=structlog.dev.plain_traceback))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # ovsdbapp and python-ovs log through the standard library: keep their warnings
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _RedactFilter) for f in handler.filters):
            handler.addFilter(_RedactFilter())
