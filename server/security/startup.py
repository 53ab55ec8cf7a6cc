"""Start-up checks of the secrets: a node never serves with a token anyone can guess.

- An empty or placeholder admin token (``change-me``, ``<set me>``...) is refused when the server listens
  beyond loopback; on loopback it is replaced by a random token printed once on stdout with the dashboard
  URL (the token in the URL's fragment, which browsers never send to a server), the way notebook servers
  do. Beyond loopback an admin token must also be at least ``MIN_TOKEN_LENGTH`` characters.
- Tenant admin tokens follow the same rules but are never generated: a placeholder is refused anywhere.
- A placeholder call-token or TURN secret is refused anywhere, and so is a call-token secret shorter than
  ``MIN_SECRET_LENGTH`` (an HS256 key as long as the hash).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sys
from typing import TextIO

from server.security.call_tokens import MIN_SECRET_LENGTH
from server.settings import ConfigError, Settings

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
PLACEHOLDERS = frozenset(
    {"", "change-me", "changeme", "change_me", "set-me", "secret", "password", "admin", "token", "test"}
)


class InsecureConfiguration(ConfigError):
    """A secret is missing or guessable for where the server listens; the message says what to set."""


def is_placeholder(value: str | None) -> bool:
    text = (value or "").strip()
    return text.lower() in PLACEHOLDERS or (text.startswith("<") and text.endswith(">"))


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def secure_settings(settings: Settings, out: TextIO | None = None) -> Settings:
    """``settings`` if its secrets are fit for its listening address, a copy with a generated admin token
    (printed on ``out``, default stdout) on loopback, or ``InsecureConfiguration``."""
    server = settings.server
    loopback = is_loopback(server.host)
    where = f"listening on {server.host}"
    _check_secrets(settings, where, loopback)
    if not is_placeholder(server.admin_token):
        _check_token(server.admin_token, "server.admin_token", where, loopback)
    elif not loopback:
        raise InsecureConfiguration(
            f"server.admin_token is a placeholder ({server.admin_token!r}) while {where}: set a random token"
            " (VOICE_AGENT__SERVER__ADMIN_TOKEN=$(python -c"
            " 'import secrets; print(secrets.token_urlsafe(24))'))"
        )
    else:
        settings = _with_generated_admin_token(settings, out or sys.stdout)
    if not server.call_tokens.secret and not loopback:
        log.warning("no server.call_tokens.secret while %s: every caller is anonymous", where)
    return settings


def _check_secrets(settings: Settings, where: str, loopback: bool) -> None:
    server = settings.server
    for tenant_token in server.tenant_admin_tokens:
        name = f"the admin token of tenant {tenant_token.tenant!r}"
        _check_token(tenant_token.token, name, where, loopback)
    for name, secret in (
        ("server.call_tokens.secret", server.call_tokens.secret),
        ("server.turn.secret", server.turn.secret),
    ):
        if secret is not None and is_placeholder(secret):
            raise InsecureConfiguration(f"{name} is a placeholder ({secret!r}); set a random secret or remove it")
    call_secret = server.call_tokens.secret
    if call_secret and len(call_secret) < MIN_SECRET_LENGTH:
        raise InsecureConfiguration(f"server.call_tokens.secret is shorter than {MIN_SECRET_LENGTH} characters")


def _with_generated_admin_token(settings: Settings, out: TextIO) -> Settings:
    token = secrets.token_urlsafe(24)
    server = settings.server
    settings = settings.model_copy(deep=True)
    settings.server.admin_token = token
    print(
        f"voice-agent: no admin token configured; this run's admin token is {token}\n"
        f"  dashboard: http://{server.host}:{server.port}/admin/#token={token}",
        file=out,
        flush=True,
    )
    log.info("generated a random admin token for this run (printed on stdout, not logged)")
    return settings


def _check_token(token: str, name: str, where: str, loopback: bool) -> None:
    if is_placeholder(token):
        raise InsecureConfiguration(f"{name} is a placeholder; set a random token")
    if not loopback and len(token) < MIN_TOKEN_LENGTH:
        raise InsecureConfiguration(f"{name} is shorter than {MIN_TOKEN_LENGTH} characters while {where}")
