"""Who a call is for: a user of one tenant, proven by a signed call token, or an anonymous caller.

The call core never takes a user from a request body: transports get a ``CallIdentity`` from
``server.security`` (a verified call token, a redeemed ticket, the SIP bridge's phone directory) and hand
it to the session. An anonymous identity is a fresh random user per call: it reads no one's memory and
no one's held prompts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

DEFAULT_TENANT = "default"
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ANONYMOUS_PREFIX = "anon-"


@dataclass(frozen=True)
class CallIdentity:
    user_id: str
    tenant: str = DEFAULT_TENANT
    anonymous: bool = False

    @classmethod
    def fresh_anonymous(cls, tenant: str = DEFAULT_TENANT) -> CallIdentity:
        """A user nobody else is or will be: 128 random bits."""
        return cls(ANONYMOUS_PREFIX + secrets.token_hex(16), tenant, anonymous=True)

    def owns(self, user_id: str | None, tenant: str | None) -> bool:
        """True when a call or record of ``user_id`` in ``tenant`` belongs to this identity."""
        return user_id == self.user_id and (tenant or DEFAULT_TENANT) == self.tenant


def valid_user_id(value: object) -> bool:
    return isinstance(value, str) and USER_ID_PATTERN.match(value) is not None


def valid_tenant(value: object) -> bool:
    return isinstance(value, str) and TENANT_PATTERN.match(value) is not None
