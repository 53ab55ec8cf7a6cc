"""Signed call tokens and single-use WebSocket tickets (JWT, HS256, PyJWT).

A call token says who the caller is: ``sub`` (user id), ``tenant`` (default ``"default"``), ``exp`` and
``iat``, for audience ``server.call_tokens.audience`` from issuer ``server.call_tokens.issuer``. It is
issued by ``POST /api/admin/call-tokens`` or by the integrator's own backend with the shared secret
(README.md, "Security"). Tokens living longer than ``max_ttl_s`` are refused: they are meant to be
short-lived.

Without a secret the server is in anonymous mode: every call gets a fresh random user, and the token the
server hands that caller (to hang up, read its record, open its sockets) is signed with a random key of
this process, so it is worth nothing elsewhere.

A ticket is a token for one WebSocket upgrade: audience ``<audience>:ticket:<purpose>``, the call id it is
for, ``ticket_ttl_s`` of life, and a ``jti`` this process accepts once. Browsers cannot set headers on a
WebSocket, so the ticket goes in the query string; being single-use and seconds-long, a logged or leaked
ticket is worthless (and the access log redacts it anyway).
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from server.calls.identity import DEFAULT_TENANT, CallIdentity, valid_tenant, valid_user_id
from server.security.config import CallTokenConfig

ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32  # RFC 7518: an HS256 key at least as long as the hash


class CallTokenError(Exception):
    """A token or ticket that cannot be accepted; the message says why (for the 401 body)."""


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: float
    identity: CallIdentity


class CallTokens:
    """Issues and verifies call tokens and tickets for one node."""

    def __init__(self, config: CallTokenConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.anonymous = not config.secret
        if config.secret and len(config.secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"server.call_tokens.secret must be at least {MIN_SECRET_LENGTH} characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        self._key = config.secret or secrets.token_urlsafe(32)
        self._clock = clock
        self._redeemed: dict[str, float] = {}  # ticket jti -> its expiry

    # -- call tokens --------------------------------------------------------------------------------
    def issue(self, user_id: str, tenant: str = DEFAULT_TENANT, ttl_s: int | None = None) -> IssuedToken:
        """A token for ``user_id`` of ``tenant``; ``ttl_s`` defaults to ``default_ttl_s``."""
        return self._issue(CallIdentity(user_id, tenant), ttl_s or self.config.default_ttl_s)

    def issue_anonymous(self, ttl_s: int) -> IssuedToken:
        """A fresh anonymous identity and the token its caller uses for the rest of the call."""
        return self._issue(CallIdentity.fresh_anonymous(), ttl_s)

    def _issue(self, identity: CallIdentity, ttl_s: int) -> IssuedToken:
        if not valid_user_id(identity.user_id):
            raise ValueError("user_id must be 1-128 letters, digits or _.:@+-")
        if not valid_tenant(identity.tenant):
            raise ValueError("tenant must be 1-64 letters, digits or _.-")
        if not 1 <= ttl_s <= self.config.max_ttl_s:
            raise ValueError(f"ttl_s must be 1..{self.config.max_ttl_s} (server.call_tokens.max_ttl_s)")
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": identity.user_id,
            "tenant": identity.tenant,
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "iat": now,
            "exp": now + ttl_s,
        }
        if identity.anonymous:
            claims["anon"] = True
        return IssuedToken(self._encode(claims), float(now + ttl_s), identity)

    def verify(self, token: str) -> CallIdentity:
        """The identity a call token proves; ``CallTokenError`` says why it does not."""
        claims = self._decode(token, self.config.audience)
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self.config.max_ttl_s + self.config.leeway_s:
            raise CallTokenError(
                f"call token lives {lifetime} s; this server accepts at most {self.config.max_ttl_s} s"
            )
        return _identity(claims)

    # -- tickets ------------------------------------------------------------------------------------
    def issue_ticket(self, identity: CallIdentity, purpose: str, call_id: str | None = None) -> str:
        """A single-use ticket for one WebSocket upgrade of ``purpose`` (and ``call_id``) by ``identity``."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": identity.user_id,
            "tenant": identity.tenant,
            "anon": identity.anonymous,
            "iss": self.config.issuer,
            "aud": self._ticket_audience(purpose),
            "iat": now,
            "exp": now + self.config.ticket_ttl_s,
            "jti": secrets.token_hex(16),
        }
        if call_id is not None:
            claims["call"] = call_id
        return self._encode(claims)

    def redeem_ticket(self, ticket: str, purpose: str, call_id: str | None = None) -> CallIdentity:
        """The identity of a ticket, accepted once; ``CallTokenError`` if expired, reused or for another
        purpose or call."""
        claims = self._decode(ticket, self._ticket_audience(purpose), require=("jti",))
        if call_id is not None and claims.get("call") != call_id:
            raise CallTokenError("ticket is for another call")
        now = self._clock()
        self._redeemed = {jti: exp for jti, exp in self._redeemed.items() if exp + self.config.leeway_s > now}
        if claims["jti"] in self._redeemed:
            raise CallTokenError("ticket was already used; ask for a new one")
        self._redeemed[claims["jti"]] = float(claims["exp"])
        return _identity(claims)

    def _ticket_audience(self, purpose: str) -> str:
        return f"{self.config.audience}:ticket:{purpose}"

    # -- JWT ----------------------------------------------------------------------------------------
    def _encode(self, claims: dict[str, Any]) -> str:
        with warnings.catch_warnings():  # the anonymous key is random and long; an explicit secret is checked
            warnings.simplefilter("ignore")
            return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def _decode(self, token: str, audience: str, require: tuple[str, ...] = ()) -> dict[str, Any]:
        if not token or len(token) > 4096:
            raise CallTokenError("token missing or too long")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                claims: dict[str, Any] = jwt.decode(
                    token,
                    self._key,
                    algorithms=[ALGORITHM],
                    audience=audience,
                    issuer=self.config.issuer,
                    # times are checked below, on this object's clock
                    options={
                        "require": ["exp", "iat", "sub", *require],
                        "verify_exp": False,
                        "verify_iat": False,
                    },
                )
        except jwt.InvalidTokenError as exc:
            raise CallTokenError(f"token refused: {exc}") from None
        exp, iat, now, leeway = claims["exp"], claims["iat"], self._clock(), self.config.leeway_s
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise CallTokenError("token refused: 'exp' and 'iat' must be numbers (unix time)")
        if exp + leeway <= now:
            raise CallTokenError("token expired")
        if iat - leeway > now:
            raise CallTokenError("token refused: issued in the future ('iat'); check the issuer's clock")
        return claims


def _identity(claims: dict[str, Any]) -> CallIdentity:
    user, tenant = claims.get("sub"), claims.get("tenant", DEFAULT_TENANT)
    if not valid_user_id(user):
        raise CallTokenError("token 'sub' must be a user id of 1-128 letters, digits or _.:@+-")
    if not valid_tenant(tenant):
        raise CallTokenError("token 'tenant' must be 1-64 letters, digits or _.-")
    return CallIdentity(str(user), str(tenant), anonymous=bool(claims.get("anon", False)))
