"""The one exception hierarchy of the SDK: infrastructure failures only.

What the user's code did (an exit code, a traceback in a code context) is a
result, never an exception. Each error says whether trying again may help.
"""
from __future__ import annotations

from typing import Any, Optional


class SandboxError(Exception):
    """airlockd (or the way to it) failed; `code` is the API's error code."""

    retryable = False

    def __init__(self, message: str, *, code: str = "", status: int = 0, retryable: Optional[bool] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class InvalidArgument(SandboxError):
    """400: the request named something wrong (the message says which field)."""


class NotFound(SandboxError):
    """404: no such sandbox, exec, snapshot, context or file."""


class Conflict(SandboxError):
    """409: not in this state (the message names the sandbox's state)."""

    @property
    def state(self) -> Optional[str]:
        for state in ("paused", "stopped", "creating", "busy", "dead", "starting"):
            if f" is {state}" in self.message:
                return state
        return None


class Capacity(SandboxError):
    """429 or 507: a budget of airlockd is full for now."""

    retryable = True


class Transient(SandboxError):
    """503: airlockd is starting, draining, or has too many connections."""

    retryable = True


class AuthError(SandboxError):
    """401 or 403: a missing or wrong token, or not the operator's."""


class OutcomeUnknown(SandboxError):
    """The connection broke after the request was sent: the code may have run."""


class Timeout(OutcomeUnknown):
    """Sent, and no answer in time: it may still be running (so not retryable blindly)."""


_BY_STATUS = {400: InvalidArgument, 401: AuthError, 403: AuthError, 404: NotFound, 409: Conflict,
              413: InvalidArgument, 429: Capacity, 431: InvalidArgument, 503: Transient, 507: Capacity}


def error_from(status: int, document: Any) -> SandboxError:
    """The exception for an error answer of the API ({"error": {code, message, retryable}})."""
    detail = document.get("error") if isinstance(document, dict) else None
    if not isinstance(detail, dict):
        detail = {"code": "", "message": f"airlockd answered HTTP {status}", "retryable": False}
    kind = _BY_STATUS.get(status, SandboxError)
    return kind(str(detail.get("message", "")), code=str(detail.get("code", "")), status=status,
                retryable=bool(detail.get("retryable", kind.retryable)))
