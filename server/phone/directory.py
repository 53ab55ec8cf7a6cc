"""The phone directory: phone number <-> user id <-> tenant <-> time zone.

It answers two questions: who is calling (``by_number``: the caller's number from P-Asserted-Identity or
From, as ``server.transports.sip.CallerIdentity.number`` gives it) and which phone rings for a user
(``by_user``: outbound outreach). Numbers are kept in one normal form (``normalize_number``: digits with an
optional leading ``+``, E.164 recommended), so "+1 (555) 123-0001" and "+15551230001" are one entry.
Entries come from a YAML file (``phone.directory_file``) or the admin API; the store is
``server.storage.phone_directory``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_NUMBER = re.compile(r"^\+?[0-9]{2,20}$")
_SEPARATORS = re.compile(r"[\s\-.()/]")

Source = Literal["file", "admin"]


class DirectoryError(ValueError):
    """A directory entry or file cannot be used; the message names the entry and the problem."""


def normalize_number(raw: str) -> str:
    """``+1 (555) 123-0001`` -> ``+15551230001``; ValueError for anything that is not a phone number."""
    number = _SEPARATORS.sub("", raw or "")
    if not _NUMBER.match(number):
        raise ValueError(
            f"not a phone number: {raw!r} (digits with an optional leading +, e.g. +15551230001)"
        )
    return number


class DirectoryEntry(BaseModel):
    """One phone number of one user. ``sip_uri``: dial this URI instead of the number through the trunk
    (a PBX extension, a softphone); inbound calls are still matched by ``number``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: str = Field(min_length=2, max_length=32)
    user_id: str = Field(min_length=1, max_length=200)
    tenant: str = Field("default", min_length=1, max_length=128)
    timezone: str = "UTC"
    sip_uri: str | None = Field(None, max_length=300)
    display_name: str | None = Field(None, max_length=200)
    source: Source = "admin"

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return normalize_number(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from exc
        return value

    @field_validator("sip_uri")
    @classmethod
    def _sip_uri(cls, value: str | None) -> str | None:
        if value is not None and (
            not value.startswith("sip:") or len(value) < 6 or any(c in value for c in "\r\n <>")
        ):
            raise ValueError(f"sip_uri must look like sip:user@host[:port], got {value!r}")
        return value

    @property
    def dial_target(self) -> str:
        """What the SIP user agent dials: the URI if given, else the number (through the trunk)."""
        return self.sip_uri or self.number

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class PhoneDirectory(Protocol):
    """The directory store (``server.storage.phone_directory.SqlPhoneDirectory``); coroutines."""

    async def by_number(self, number: str) -> DirectoryEntry | None: ...

    async def by_user(self, user_id: str, tenant: str | None = None) -> DirectoryEntry | None: ...

    async def entries(self, tenant: str | None = None, limit: int = 1000) -> list[DirectoryEntry]: ...

    async def put(self, entry: DirectoryEntry) -> None: ...

    async def remove(self, number: str) -> bool: ...

    async def replace_source(self, source: Source, entries: list[DirectoryEntry]) -> int: ...

    def close(self) -> None: ...


def load_directory_file(path: str | Path) -> list[DirectoryEntry]:
    """The entries of a YAML directory file (a list of mappings); ``DirectoryError`` names the bad entry."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise DirectoryError(f"phone.directory_file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise DirectoryError(f"phone.directory_file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, list):
        raise DirectoryError(f"phone.directory_file {path} must hold a list of entries")
    entries: list[DirectoryEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise DirectoryError(f"{path} entry {index}: must be a mapping with number and user_id")
        try:
            entry = DirectoryEntry.model_validate({**item, "source": "file"})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise DirectoryError(f"{path} entry {index}: {problems}") from None
        if entry.number in seen:
            raise DirectoryError(f"{path} entries {seen[entry.number]} and {index} both list {entry.number}")
        seen[entry.number] = index
        entries.append(entry)
    return entries
