"""ICE servers for a caller: the static ones, plus TURN with ephemeral credentials (TURN REST).

coturn's ``use-auth-secret`` (and other TURN servers' "REST API" mode) accepts any username of the form
``<expiry unix time>:<user>`` whose password is ``base64(HMAC-SHA1(static-auth-secret, username))``, until
the expiry passes. The server computes them per caller, so no long-lived TURN password ever reaches a
browser and a leaked one dies with its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

from server.config import IceServer
from server.security.config import TurnConfig


def turn_credentials(secret: str, user: str, ttl_s: int, now: float) -> tuple[str, str]:
    """``(username, credential)`` valid until ``now + ttl_s``."""
    username = f"{int(now) + ttl_s}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class IceServerProvider:
    def __init__(
        self, static: list[IceServer], turn: TurnConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.static = list(static)
        self.turn = turn
        self._clock = clock

    def for_user(self, user: str) -> list[IceServer]:
        """The static servers plus the TURN servers with credentials for ``user`` (the caller's user id,
        or "server" for the node's own side of the call)."""
        if not self.turn.urls or not self.turn.secret:
            return list(self.static)
        username, credential = turn_credentials(self.turn.secret, user, self.turn.ttl_s, self._clock())
        return [*self.static, IceServer(urls=list(self.turn.urls), username=username, credential=credential)]
