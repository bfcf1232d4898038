"""structlog setup: JSON lines in-cluster, readable console output in a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(fmt: str | None = None, level: str = "info") -> None:
    """fmt: 'json' | 'console' | None (console on a terminal, JSON otherwise)."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    lvl = getattr(logging, level.upper(), None)
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    renderer = (structlog.processors.JSONRenderer() if fmt == "json"
                else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # ovsdbapp and python-ovs log through the standard library: keep their warnings
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
