"""Loads the YAML configuration into typed settings.

Order of precedence (highest first): environment variables ``VOICE_AGENT__SECTION__KEY``, the YAML file
given with ``--config`` (or ``VOICE_AGENT_CONFIG``), then ``configs/default.yaml``. Each package owns the
model of its own section; this module only composes them, so packages never import each other's config.
It lives in ``server`` (the composition root) so that no package depends on ``configs/``, which holds
only the YAML files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from agent.config import AgentConfig
from knowledge.config import KnowledgeConfig
from messaging.config import BusConfig
from scheduler.config import SchedulerConfig
from server.config import ServerConfig, StorageConfig
from server.phone.config import PhoneConfig
from server.transports.sip.config import SipConfig
from speech.config import SpeechConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
ENV_PREFIX = "VOICE_AGENT__"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


class Settings(BaseModel, extra="forbid"):
    server: ServerConfig = ServerConfig()
    bus: BusConfig = BusConfig()
    storage: StorageConfig = StorageConfig()
    speech: SpeechConfig = SpeechConfig()
    agent: AgentConfig = AgentConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    sip: SipConfig = SipConfig()  # the SIP user agent (phone calls in and out); off by default
    phone: PhoneConfig = PhoneConfig()  # directory of numbers, outbound outreach policy


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``VOICE_AGENT__SPEECH__STT__MODEL=base`` -> ``{"speech": {"stt": {"model": "base"}}}``.

    Values are parsed as YAML scalars so numbers, booleans and lists can be given.
    """
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__") if part]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n" + "\n".join(lines)


# Keys of round 1 that moved: a file still using them would otherwise silently write to the default paths.
_MOVED = {
    ("server", "records_db"): "storage.records",
    ("bus", "proactive_ledger"): "storage.delivery_ledger",
    # A static shared token let any holder claim any user; callers now send signed call tokens.
    ("server", "call_token"): "server.call_tokens.secret (a signing secret: README.md, Security)",
}


def _refuse_moved_keys(data: Mapping[str, Any]) -> None:
    for (section, key), new in _MOVED.items():
        if isinstance(data.get(section), Mapping) and key in data[section]:
            raise ConfigError(f"invalid configuration:\n  {section}.{key} moved to {new}; rename it")


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    environ = os.environ if environ is None else environ
    data = _read_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}
    chosen = path or environ.get("VOICE_AGENT_CONFIG")
    if chosen:
        data = _merge(data, _read_yaml(Path(chosen)))
    data = _merge(data, _env_overrides(environ))
    _refuse_moved_keys(data)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
