"""Admin principals: a global admin token, or tokens scoped to one tenant.

A scoped principal sees and changes only its tenant: lists are filtered to it, writes are made in it, and
an object of another tenant is "not found" (its existence is not revealed).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from server.calls.identity import DEFAULT_TENANT
from server.security.config import TenantAdminToken


class TenantForbidden(Exception):
    """A scoped admin asked for another tenant."""


@dataclass(frozen=True)
class AdminPrincipal:
    tenant: str | None  # None: global

    @property
    def is_global(self) -> bool:
        return self.tenant is None

    def sees(self, tenant: str | None) -> bool:
        return self.tenant is None or (tenant or DEFAULT_TENANT) == self.tenant

    def read_scope(self, requested: str | None) -> str | None:
        """The tenant a listing is limited to: a scoped principal's own; a global one's ``requested``
        (None: every tenant)."""
        if self.tenant is None:
            return requested or None
        if requested and requested != self.tenant:
            raise TenantForbidden(f"this admin token is scoped to tenant {self.tenant!r}")
        return self.tenant

    def write_tenant(self, requested: str | None) -> str:
        """The tenant a new object goes to: a scoped principal's own; a global one's ``requested`` or
        ``"default"``."""
        return self.read_scope(requested) or DEFAULT_TENANT


class AdminAuthenticator:
    """Matches a presented token against the global and the tenant tokens (constant time each)."""

    def __init__(self, global_token: str, tenant_tokens: Iterable[TenantAdminToken] = ()) -> None:
        self._tokens: list[tuple[bytes, str | None]] = []
        if global_token:  # an empty token refuses everyone rather than letting everyone in
            self._tokens.append((global_token.encode(), None))
        self._tokens += [(t.token.encode(), t.tenant) for t in tenant_tokens if t.token]

    def authenticate(self, token: str | None) -> AdminPrincipal | None:
        if not token:
            return None
        given = token.encode()
        found: AdminPrincipal | None = None
        for expected, tenant in self._tokens:  # compare with every token: timing says nothing about which
            if hmac.compare_digest(expected, given) and found is None:
                found = AdminPrincipal(tenant)
        return found
