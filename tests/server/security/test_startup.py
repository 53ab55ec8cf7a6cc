"""Start-up checks of the secrets."""

from __future__ import annotations

import io

import pytest

from server.security.config import TenantAdminToken
from server.security.startup import InsecureConfiguration, secure_settings
from server.settings import Settings, load_settings


def settings(host: str = "127.0.0.1", admin_token: str = "change-me") -> Settings:
    s = Settings()
    s.server.host, s.server.admin_token = host, admin_token
    return s


@pytest.mark.parametrize("token", ["change-me", "", "<set me>", "secret"])
def test_a_placeholder_admin_token_is_refused_beyond_loopback(token: str) -> None:
    with pytest.raises(InsecureConfiguration, match="admin_token"):
        secure_settings(settings("0.0.0.0", token))


def test_a_short_admin_token_is_refused_beyond_loopback_only() -> None:
    with pytest.raises(InsecureConfiguration, match="shorter"):
        secure_settings(settings("192.168.1.10", "s3cret-admin"))
    assert secure_settings(settings("127.0.0.1", "s3cret-admin")).server.admin_token == "s3cret-admin"


def test_on_loopback_a_random_token_is_generated_and_printed_once() -> None:
    out = io.StringIO()
    original = settings("127.0.0.1")
    secured = secure_settings(original, out)
    token = secured.server.admin_token
    assert len(token) >= 24 and token != "change-me"
    assert original.server.admin_token == "change-me"  # the caller's settings are not changed
    printed = out.getvalue()
    assert printed.count(token) == 2 and f"http://127.0.0.1:8080/admin/#token={token}" in printed
    assert secure_settings(settings("::1"), io.StringIO()).server.admin_token != secured.server.admin_token


def test_placeholder_secrets_are_refused_anywhere() -> None:
    s = settings("127.0.0.1", "a-real-admin-token-of-some-length")
    s.server.tenant_admin_tokens = [TenantAdminToken(tenant="acme", token="<set me>")]
    with pytest.raises(InsecureConfiguration, match="acme"):
        secure_settings(s)
    s = settings("127.0.0.1", "a-real-admin-token-of-some-length")
    s.server.call_tokens.secret = "<set me>"
    with pytest.raises(InsecureConfiguration, match="call_tokens"):
        secure_settings(s)
    s.server.call_tokens.secret = "too-short"
    with pytest.raises(InsecureConfiguration, match="shorter than 32"):
        secure_settings(s)


def test_the_production_example_holds_no_working_secret() -> None:
    example = load_settings("configs/production.example.yaml", environ={})
    example.server.host = "0.0.0.0"
    with pytest.raises(InsecureConfiguration):
        secure_settings(example)
    example.server.call_tokens.secret = None
    example.server.turn.secret = None
    with pytest.raises(InsecureConfiguration, match="admin_token"):
        secure_settings(example)


def test_the_old_static_call_token_is_refused_with_its_new_place() -> None:
    from server.settings import ConfigError

    with pytest.raises(ConfigError, match="call_tokens.secret"):
        load_settings(environ={"VOICE_AGENT__SERVER__CALL_TOKEN": "s3cret"})
