"""Typed settings of the security features (parts of section ``server``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from server.calls.identity import TENANT_PATTERN


class CallTokenConfig(BaseModel):
    """Signed call tokens (JWT, HS256). Without ``secret`` the server runs anonymous calls only."""

    secret: str | None = None  # shared with the integrator's backend; at least 32 characters
    issuer: str = "voice-agent"
    audience: str = "voice-agent-call"
    default_ttl_s: int = Field(default=900, ge=10)  # tokens issued by POST /api/admin/call-tokens
    max_ttl_s: int = Field(default=86_400, ge=10)  # a token living longer than this (exp - iat) is refused
    leeway_s: int = Field(default=30, ge=0)  # clock skew allowed between the issuer and this server
    ticket_ttl_s: int = Field(default=30, ge=1)  # single-use WebSocket tickets


class TurnConfig(BaseModel):
    """TURN with ephemeral credentials (the TURN REST scheme; coturn ``use-auth-secret``)."""

    urls: list[str] = []  # e.g. ["turn:turn.example.org:3478?transport=udp"]
    secret: str | None = None  # coturn's static-auth-secret
    ttl_s: int = Field(default=3600, ge=60)  # lifetime of the credentials handed to a caller


class RateLimit(BaseModel):
    per_minute: float = Field(gt=0)
    burst: int = Field(ge=1)


class RateLimitConfig(BaseModel):
    """Token buckets; a refused request gets 429 with Retry-After."""

    enabled: bool = True
    # Call creation (WebRTC offers and WebSocket media tickets) per client address and per token's user.
    calls_per_client: RateLimit = RateLimit(per_minute=60, burst=20)
    calls_per_token: RateLimit = RateLimit(per_minute=20, burst=10)
    uploads_per_client: RateLimit = RateLimit(per_minute=30, burst=10)
    # Wrong tokens (admin, call, ticket) per client address; a missing token is not counted.
    failed_auth_per_client: RateLimit = RateLimit(per_minute=10, burst=10)


class TenantAdminToken(BaseModel):
    """An admin token that sees and changes only ``tenant``."""

    tenant: str
    token: str

    @field_validator("tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if not TENANT_PATTERN.match(value):
            raise ValueError("tenant must be 1-64 letters, digits or _.-")
        return value
