"""Digest authentication of inbound callers (RFC 3261 §22, RFC 7616), the server side aiosipua lacks.

Nonces are stateless: ``<issued>.<hmac>`` under a per-process secret, valid ``nonce_ttl_s``; a stale one
is re-challenged with ``stale=true`` so the caller retries without asking its user. The expected digest is
computed with aiosipua's own client-side ``build_credentials`` (the same arithmetic both ways).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable

from aiosipua import AuthChallenge, SipDigestAuth, SipRequest, build_credentials, parse_auth, stringify_auth

from server.transports.sip.config import InboundAuthConfig

log = logging.getLogger(__name__)


class DigestAuthenticator:
    """Challenges requests and checks their ``Authorization`` against configured users."""

    def __init__(self, config: InboundAuthConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._secret = os.urandom(32)
        self._now = clock

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        params = {"realm": self._config.realm, "nonce": self._nonce(int(self._now())), "algorithm": "MD5"}
        params["qop"] = "auth"
        if stale:
            params["stale"] = "true"
        return stringify_auth(AuthChallenge(scheme="Digest", params=params))

    def check(self, request: SipRequest) -> tuple[str | None, bool]:
        """``(user, stale)``: the authenticated user name, or None; ``stale`` when only the nonce expired."""
        raw = request.get_header("authorization")
        if not raw:
            return None, False
        creds = parse_auth(raw, credentials=True).params
        username, nonce, uri = creds.get("username", ""), creds.get("nonce", ""), creds.get("uri", "")
        password = self._config.users.get(username)
        if creds.get("realm") != self._config.realm or password is None or not uri:
            log.warning("digest auth refused for %r (unknown user or realm)", username)
            return None, False
        if not self._nonce_valid(nonce):
            return None, self._nonce_signed(nonce)
        expected = self._expected(username, password.get_secret_value(), request.method, creds)
        if expected is None or not hmac.compare_digest(expected, creds.get("response", "")):
            log.warning("digest auth refused for %r (wrong password)", username)
            return None, False
        return username, False

    def _expected(self, username: str, password: str, method: str, creds: dict[str, str]) -> str | None:
        challenge = AuthChallenge(
            scheme="Digest",
            params={
                "realm": self._config.realm,
                "nonce": creds["nonce"],
                "algorithm": creds.get("algorithm", "MD5"),
                **({"qop": "auth"} if creds.get("qop") else {}),
            },
        )
        try:
            nonce_count = int(creds.get("nc", "1"), 16)
        except ValueError:
            return None
        answer = build_credentials(
            SipDigestAuth(username, password),
            challenge,
            method,
            creds["uri"],
            nonce_count=nonce_count,
            cnonce=creds.get("cnonce"),
        )
        return None if answer is None else answer.params.get("response")

    def _nonce(self, issued: int) -> str:
        mac = hmac.new(self._secret, str(issued).encode(), hashlib.sha256).hexdigest()[:32]
        return f"{issued}.{mac}"

    def _nonce_signed(self, nonce: str) -> bool:
        issued, _, _ = nonce.partition(".")
        return issued.isdigit() and hmac.compare_digest(self._nonce(int(issued)), nonce)

    def _nonce_valid(self, nonce: str) -> bool:
        if not self._nonce_signed(nonce):
            return False
        age = self._now() - int(nonce.partition(".")[0])
        return 0 <= age <= self._config.nonce_ttl_s
