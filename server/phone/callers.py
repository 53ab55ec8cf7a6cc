"""Who a phone caller is: the number the SIP layer read (P-Asserted-Identity from a trusted peer, else
From) looked up in the phone directory. An unknown number, or no number at all, is an anonymous caller
with a fresh random id (``CallIdentity.fresh_anonymous``): nothing the caller sends picks a user."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from server.calls.identity import CallIdentity
from server.phone.directory import DirectoryEntry, PhoneDirectory
from server.transports.sip import CallerIdentity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhoneCaller:
    user_id: str
    tenant: str
    number: str | None
    entry: DirectoryEntry | None  # None: anonymous

    @property
    def anonymous(self) -> bool:
        return self.entry is None

    @property
    def identity(self) -> CallIdentity:
        """Who the call is for, as the call core takes it (the directory vouches for a known number)."""
        return CallIdentity(self.user_id, self.tenant, anonymous=self.anonymous)

    def info(self) -> dict[str, Any]:
        """What the call's "connection" event shows about the caller."""
        return {"caller_number": self.number, "tenant": self.tenant, "anonymous": self.anonymous}


async def identify_caller(directory: PhoneDirectory, identity: CallerIdentity) -> PhoneCaller:
    """The directory's user for the caller's number, else a new anonymous user. A failing directory makes
    the caller anonymous (the call goes on) and is logged."""
    entry = None
    if identity.number:
        try:
            entry = await directory.by_number(identity.number)
        except Exception:
            log.exception(
                "phone directory lookup of %s failed; treating the caller as anonymous", identity.number
            )
    if entry is None:
        anonymous = CallIdentity.fresh_anonymous()
        return PhoneCaller(anonymous.user_id, anonymous.tenant, identity.number, None)
    return PhoneCaller(entry.user_id, entry.tenant, identity.number, entry)
