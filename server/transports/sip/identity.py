"""Who is on the other end of a call: number, display name and addresses, read from the INVITE."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiosipua import SipRequest, parse_address

_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")


@dataclass(frozen=True)
class CallerIdentity:
    """The remote party of a call (the caller on inbound calls, the callee on outbound ones).

    ``number`` comes from P-Asserted-Identity when the peer is trusted to assert it (an allowed trunk or
    PBX), else from the From user part; it is ``None`` when that user part is not a phone number
    (``sip:alice@...``). ``user`` is the raw user part either way.
    """

    uri: str
    user: str | None
    number: str | None
    display_name: str | None
    asserted: bool  # number taken from P-Asserted-Identity
    called: str | None  # the number/user the caller dialled (To user part), for routing by DID
    remote_addr: tuple[str, int]  # where the signalling came from


def caller_identity(request: SipRequest, source: tuple[str, int], *, trust_asserted: bool) -> CallerIdentity:
    from_addr = request.from_addr
    asserted = None
    if trust_asserted:
        pai = request.get_header("p-asserted-identity")
        if pai:
            try:
                asserted = parse_address(pai.split(",")[0])
            except (ValueError, IndexError):
                asserted = None
    primary = asserted or from_addr
    user = _user(primary.uri.user if primary else None)
    to_addr = request.to_addr
    return CallerIdentity(
        uri=_uri(from_addr.uri.scheme, from_addr.uri.user, from_addr.uri.host) if from_addr else "",
        user=user,
        number=_number(user),
        display_name=_display(asserted, from_addr),
        asserted=asserted is not None and asserted.uri.user is not None,
        called=_user(to_addr.uri.user if to_addr else None),
        remote_addr=source,
    )


def callee_identity(target_uri: str, source: tuple[str, int]) -> CallerIdentity:
    """Identity of the party we dialled (outbound calls)."""
    try:
        address = parse_address(target_uri if target_uri.startswith("<") else f"<{target_uri}>")
        user = _user(address.uri.user)
    except (ValueError, IndexError):
        user = None
    return CallerIdentity(target_uri, user, _number(user), None, False, user, source)


def _user(user: str | None) -> str | None:
    if not user:
        return None
    return user.split(";")[0]  # tel-style parameters: "+4930123;phone-context=..."


def _number(user: str | None) -> str | None:
    if user is None:
        return None
    digits = re.sub(r"[-. ()]", "", user)
    return digits if _NUMBER.match(digits) else None


def _display(*addresses: object) -> str | None:
    for address in addresses:
        name = getattr(address, "display_name", None)
        if name:
            return str(name).strip().strip('"') or None
    return None


def _uri(scheme: str, user: str | None, host: str) -> str:
    return f"{scheme}:{user}@{host}" if user else f"{scheme}:{host}"
