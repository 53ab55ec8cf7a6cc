"""Bearer-token checks: call endpoints (``ServerConfig.call_token``) and admin-only routes.

The token may come as ``Authorization: Bearer <token>`` or, for WebSockets and the page's first load where
browsers cannot set headers, as ``?token=<token>``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def admin_only(routes: list[web.RouteDef], admin_token: str) -> list[web.RouteDef]:
    """The same routes, refusing (401) any request without ``Authorization: Bearer <admin_token>``.

    Used for routes other packages define without knowing our auth (the knowledge upload API). An empty
    admin token refuses everyone rather than opening the routes."""

    def guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            given = header[7:].strip() if header.lower().startswith("bearer ") else None
            if not admin_token or not token_matches(admin_token, given):
                return web.json_response(
                    {
                        "error": "admin token missing or wrong: send Authorization: Bearer <server.admin_token>"
                    },
                    status=401,
                )
            return await handler(request)

        return guarded

    return [web.RouteDef(r.method, r.path, guard(r.handler), r.kwargs) for r in routes]
