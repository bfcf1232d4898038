"""Log redaction (issue 9: secrets and certificates never appear in logs)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from ycloud_controller import logs

PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
       "-----END PRIVATE KEY-----\n")
CERT = "-----BEGIN CERTIFICATE-----\nMIIDazCCAlOgAwIBAgIUQ2x\n-----END CERTIFICATE-----"
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.payload.signature"


def test_pem_blocks_and_bearer_tokens_are_replaced_in_any_text() -> None:
    text = logs.redact_text(f"loaded {PEM} and {CERT}; header Authorization: Bearer {TOKEN}")
    assert "MIIE" not in text and "MIID" not in text and TOKEN not in text
    assert "[redacted private key]" in text and "[redacted certificate]" in text
    assert "Bearer [redacted]" in text
    # an unterminated block (a truncated dump) is cut to the end as well
    assert "MIIE" not in logs.redact_text(PEM[:80])
    # ordinary words are left alone
    assert logs.redact_text("basic checks, Bearer of news") == "basic checks, Bearer of news"


def test_processor_redacts_secret_keys_and_nested_values() -> None:
    event = logs.redact(None, "info", {
        "event": "config", "token": TOKEN, "api_key": {"authorization": f"Bearer {TOKEN}"},
        "user": {"name": "admin", "password": "hunter22"}, "files": [CERT],
        "private_key_file": "/etc/ssl/key.pem", "count": 3})
    dumped = json.dumps(event)
    assert TOKEN not in dumped and "hunter22" not in dumped and "MIID" not in dumped
    assert event["user"]["name"] == "admin" and event["count"] == 3


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """logs.configure for one test, its structlog output in a buffer; structlog and the root
    logger restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {h: list(h.filters) for h in handlers}
    logs.configure("json", "debug")
    out = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    yield out
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for handler, kept in filters.items():
        handler.filters[:] = kept


def test_configured_loggers_redact(configured: io.StringIO,
                                   caplog: pytest.LogCaptureFixture) -> None:
    structlog.get_logger("t").info("kubeconfig", token=TOKEN, detail=f"x {PEM}")
    logging.getLogger("urllib3.test").warning("send: Authorization: Bearer %s", TOKEN)
    try:
        raise ValueError(f"bad key {PEM}")
    except ValueError:
        structlog.get_logger("t").exception("failed")
    err = configured.getvalue()  # structlog, through the processors logs.configure set
    assert "kubeconfig" in err and "ValueError: bad key [redacted private key]" in err
    assert TOKEN not in err and "MIIE" not in err
    # the standard library's records go through the filter on the root handlers (here
    # pytest's own handler, which is installed first)
    assert "Authorization: Bearer [redacted]" in caplog.text and TOKEN not in caplog.text
