"""Bearer-token check for the call endpoints (``ServerConfig.call_token``).

The token may come as ``Authorization: Bearer <token>`` or, for WebSockets and the page's first load where
browsers cannot set headers, as ``?token=<token>``.
"""

from __future__ import annotations

import hmac

from aiohttp import web


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query.get("token")


def token_matches(expected: str | None, given: str | None) -> bool:
    """True when no token is configured, or ``given`` equals it (constant-time)."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def require_call_token(request: web.Request, expected: str | None) -> None:
    """Raise 401 unless the request carries the configured call token."""
    if not token_matches(expected, request_token(request)):
        raise web.HTTPUnauthorized(
            text='{"error": "call token missing or wrong: send Authorization: Bearer <token> or ?token="}',
            content_type="application/json",
        )
