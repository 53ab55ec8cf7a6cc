"""The request guards of the HTTP application: who is calling, may they, and how often.

- ``AdminGuard``: ``Authorization: Bearer <admin token>`` -> ``AdminPrincipal`` (global or one tenant);
  ``wrap(handler)`` guards a route and leaves the principal in ``request[ADMIN_KEY]`` (and its tenant in
  ``request[TENANT_SCOPE]``, which the knowledge document routes read).
- ``Security``: everything else a node's routes need (call tokens, tickets, Origin policy, ICE servers,
  rate limits), one per application: ``request.app[SECURITY_KEY]``.
Tokens are accepted in the ``Authorization`` header only, never in a query string (access logs, browser
history and Referer headers keep query strings); WebSocket upgrades carry a single-use ticket instead.
Wrong tokens count against the client's failed-authentication budget (429 once it is spent); a missing
token is not a guess and is not counted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from knowledge.sources.upload import TENANT_SCOPE
from server.calls.identity import CallIdentity
from server.security.admin_auth import AdminAuthenticator, AdminPrincipal, TenantForbidden
from server.security.browser import OriginPolicy
from server.security.call_tokens import CallTokenError, CallTokens
from server.security.config import RateLimitConfig
from server.security.rate_limit import RateLimiter
from server.security.turn import IceServerProvider
from server.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_KEY = web.RequestKey("admin_principal", AdminPrincipal)


def json_error(status: type[web.HTTPException], message: str, **headers: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def client_address(request: web.Request, trust_forwarded_for: bool = False) -> str:
    if trust_forwarded_for and (forwarded := request.headers.get("X-Forwarded-For")):
        return forwarded.split(",")[0].strip()
    return request.remote or "unknown"


def _unauthorized(request: web.Request, message: str) -> web.HTTPException:
    if "token" in request.query:
        message += "; tokens are not accepted in the query string"
    return json_error(web.HTTPUnauthorized, message)


def too_many(wait_s: float, what: str) -> web.HTTPException:
    return json_error(
        web.HTTPTooManyRequests,
        f"too many {what}; retry in {math.ceil(wait_s)} s",
        **{"Retry-After": str(max(1, math.ceil(wait_s)))},
    )


@dataclass
class FailedAuthBudget:
    """Wrong credentials per client: each spends one token; a spent budget refuses (429) every further
    credential check of that client until it refills."""

    limiter: RateLimiter | None = None
    trust_forwarded_for: bool = False

    def check(self, request: web.Request) -> None:
        if self.limiter is not None:
            wait = self.limiter.wait_time(client_address(request, self.trust_forwarded_for))
            if wait > 0:
                raise too_many(wait, "failed authentication attempts")

    def spend(self, request: web.Request) -> None:
        if self.limiter is not None:
            self.limiter.hit(client_address(request, self.trust_forwarded_for))


@dataclass
class AdminGuard:
    authenticator: AdminAuthenticator
    failed: FailedAuthBudget = field(default_factory=FailedAuthBudget)

    def principal(self, request: web.Request) -> AdminPrincipal:
        """The request's admin principal; 401 without a valid admin token, 429 after too many wrong ones."""
        token = bearer_token(request)
        self.failed.check(request)
        principal = self.authenticator.authenticate(token)
        if principal is None:
            if token is not None:
                self.failed.spend(request)
            raise _unauthorized(request, "admin token missing or wrong: send Authorization: Bearer <token>")
        return principal

    def wrap(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = self.principal(request)
            request[ADMIN_KEY] = principal
            if principal.tenant is not None:
                request[TENANT_SCOPE] = principal.tenant
            try:
                return await handler(request)
            except TenantForbidden as exc:
                raise json_error(web.HTTPForbidden, str(exc)) from exc

        return guarded

    def wrap_routes(self, routes: list[web.RouteDef]) -> list[web.RouteDef]:
        return [web.RouteDef(r.method, r.path, self.wrap(r.handler), r.kwargs) for r in routes]


def admin_principal(request: web.Request) -> AdminPrincipal:
    """The principal ``AdminGuard.wrap`` authenticated for this request."""
    principal: AdminPrincipal = request[ADMIN_KEY]
    return principal


class RateLimits:
    """The configured limiters (``server.rate_limits``); ``enabled: false`` turns them all off."""

    def __init__(self, config: RateLimitConfig) -> None:
        on = config.enabled
        self.calls_per_client = RateLimiter(config.calls_per_client) if on else None
        self.calls_per_token = RateLimiter(config.calls_per_token) if on else None
        self.uploads_per_client = RateLimiter(config.uploads_per_client) if on else None
        self.failed_auth = RateLimiter(config.failed_auth_per_client) if on else None


@dataclass
class Security:
    call_tokens: CallTokens
    admins: AdminGuard
    origins: OriginPolicy
    ice: IceServerProvider
    limits: RateLimits
    trust_forwarded_for: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Security:
        s = settings.server
        limits = RateLimits(s.rate_limits)
        failed = FailedAuthBudget(limits.failed_auth, s.trust_forwarded_for)
        return cls(
            call_tokens=CallTokens(s.call_tokens),
            admins=AdminGuard(AdminAuthenticator(s.admin_token, s.tenant_admin_tokens), failed),
            origins=OriginPolicy(s.allowed_origins),
            ice=IceServerProvider(list(s.ice_servers), s.turn),
            limits=limits,
            trust_forwarded_for=s.trust_forwarded_for,
        )

    def client(self, request: web.Request) -> str:
        return client_address(request, self.trust_forwarded_for)

    @staticmethod
    def limit(limiter: RateLimiter | None, key: str, what: str) -> None:
        if limiter is not None and (wait := limiter.hit(key)) > 0:
            raise too_many(wait, what)

    def limit_call_creation(self, request: web.Request, identity: CallIdentity | None) -> None:
        """A new call (offer or media ticket): per client address, and per token's user."""
        self.limit(self.limits.calls_per_client, self.client(request), "calls from this client")
        if identity is not None and not identity.anonymous:
            key = f"{identity.tenant}/{identity.user_id}"
            self.limit(self.limits.calls_per_token, key, "calls for this token")

    def call_identity(self, request: web.Request) -> CallIdentity:
        """The identity of the request's call token; 401 without a valid one."""
        identity = self.optional_call_identity(request)
        if identity is None:
            raise _unauthorized(request, "call token missing: send Authorization: Bearer <call token>")
        return identity

    def optional_call_identity(self, request: web.Request) -> CallIdentity | None:
        """The identity of the request's call token, None without one; 401 for a wrong one."""
        token = bearer_token(request)
        if token is None:
            return None
        self.admins.failed.check(request)
        try:
            return self.call_tokens.verify(token)
        except CallTokenError as exc:
            self.admins.failed.spend(request)
            raise _unauthorized(request, f"call token refused: {exc}") from exc

    def redeem_ticket(self, request: web.Request, purpose: str, call_id: str | None = None) -> CallIdentity:
        """The identity of the request's ``?ticket=`` (single use), or of its Bearer call token (clients
        that can set headers on a WebSocket); 401 without either."""
        ticket = request.query.get("ticket")
        if ticket is None:
            if bearer_token(request) is None:
                raise _unauthorized(
                    request, f"ticket missing: POST for a ticket, then connect with ?ticket= ({purpose})"
                )
            return self.call_identity(request)
        self.admins.failed.check(request)
        try:
            return self.call_tokens.redeem_ticket(ticket, purpose, call_id)
        except CallTokenError as exc:
            self.admins.failed.spend(request)
            raise _unauthorized(request, f"ticket refused: {exc}") from exc


SECURITY_KEY = web.AppKey("security", Security)
