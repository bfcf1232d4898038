"""Kubernetes API errors shared by the memory store, both backends and the fake server.

Every failed Kubernetes call raises :class:`ApiError` (or a subclass chosen by HTTP
code/reason through :func:`api_error`), carrying the HTTP code, the Kubernetes
``reason`` and a message. Code 0 means the server could not be reached (reason
``connection``).
"""

from __future__ import annotations

from typing import Any

REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A Kubernetes API failure: HTTP ``code``, Kubernetes ``reason``, ``message``.

    ``retry_after`` is the server's Retry-After in seconds when it sent one.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.details = details

    def status_dict(self) -> dict[str, Any]:
        """The error as a Kubernetes ``Status`` object (what the API server sends)."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status

    @property
    def retryable(self) -> bool:
        """Transient: connection failure, throttling or a server-side error."""
        return self.code in (0, 429) or self.code >= 500


class NotFound(ApiError):
    pass


class AlreadyExists(ApiError):
    pass


class Conflict(ApiError):
    pass


class Invalid(ApiError):
    pass


class Expired(ApiError):
    """410 Gone: the requested resourceVersion is older than the retained history."""

    def __init__(self, message: str = "too old resource version", **kwargs: Any) -> None:
        super().__init__(410, "Expired", message, **kwargs)


def api_error(
    code: int,
    reason: str | None,
    message: str,
    *,
    retry_after: float | None = None,
    details: dict[str, Any] | None = None,
) -> ApiError:
    """Build the most specific ApiError subclass for ``code``/``reason``."""
    reason = reason or REASONS.get(code, "Unknown")
    if code == 410:
        return Expired(message, retry_after=retry_after, details=details)
    cls: type[ApiError] = ApiError
    if code == 404:
        cls = NotFound
    elif code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif code == 422:
        cls = Invalid
    return cls(code, reason, message, retry_after=retry_after, details=details)


def from_status(code: int, body: Any, *, retry_after: float | None = None) -> ApiError:
    """ApiError from an HTTP code and a (possibly missing or non-Status) response body."""
    if isinstance(body, dict) and body.get("kind") == "Status":
        return api_error(
            int(body.get("code") or code),
            body.get("reason"),
            str(body.get("message", "")),
            retry_after=retry_after,
            details=body.get("details"),
        )
    message = body if isinstance(body, str) else ""
    return api_error(code, None, message[:500], retry_after=retry_after)


def details_for(kind: str, name: str, group: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details
