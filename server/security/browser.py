"""What a browser is told and checked for: the Origin allow-list of call endpoints and the security
headers (Content-Security-Policy and friends) on every response.

Origin: a browser sends ``Origin`` on cross-origin requests, every POST and every WebSocket upgrade. A
call endpoint accepts a request without Origin (a server, a gateway, a test client: none of them is a
web page another site controls), one from the server's own origin (same host and port, either scheme, so
it works behind a TLS-terminating proxy), and one from ``server.allowed_origins``; anything else is 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

# 'self' for scripts and styles only: the pages have no inline script or style. Media may come from the
# call's MediaStream (a blob/mediastream URL); sockets go to this host.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' {sockets}; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=(), payment=(), usb=()",
}


def content_security_policy(host: str) -> str:
    return CSP.format(sockets=f"ws://{host} wss://{host}" if host else "")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Adds the headers to every answer, errors included (an HTTPException is an answer too)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply(request, exc)
        raise
    if not response.prepared:  # a WebSocket or streamed answer has sent its headers already
        _apply(request, response)
    return response


def _apply(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", content_security_policy(request.host))
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


class OriginPolicy:
    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = {o.rstrip("/").lower() for o in allowed}

    def allows(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allowed or "*" in self.allowed:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == request.host.lower()

    def check(self, request: web.Request) -> None:
        if not self.allows(request):
            raise web.HTTPForbidden(
                text='{"error": "origin not allowed: add it to server.allowed_origins"}',
                content_type="application/json",
            )
