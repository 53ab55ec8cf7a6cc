"""The phone directory: numbers in one normal form, entries validated (time zone, SIP URI), the YAML file
loaded with clear errors, and the store on SQLite and PostgreSQL (file entries replaced as a whole, admin
entries kept); caller identification makes unknown numbers anonymous."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from server.phone.callers import identify_caller
from server.phone.directory import DirectoryEntry, DirectoryError, load_directory_file, normalize_number
from server.storage.phone_directory import SqlPhoneDirectory, open_phone_directory
from server.transports.sip import CallerIdentity
from tests.fixtures.postgres import database_target


@pytest.fixture(params=["sqlite", "postgres"])
def directory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlPhoneDirectory]:
    store = open_phone_directory(database_target(request, tmp_path, "directory.sqlite3"))
    yield store
    store.close()


def _number() -> str:
    return "+1" + str(uuid.uuid4().int)[:10]


def test_numbers_have_one_normal_form() -> None:
    assert normalize_number("+1 (555) 123-0001") == "+15551230001"
    assert normalize_number("0049 30 1234.5678") == "00493012345678"
    for bad in ("", "+", "alice", "+1555x", "1" * 30):
        with pytest.raises(ValueError, match="not a phone number"):
            normalize_number(bad)


def test_entries_are_validated() -> None:
    entry = DirectoryEntry(number="+1 555 123 0001", user_id="alice", timezone="Europe/Berlin")
    assert entry.number == "+15551230001" and entry.dial_target == "+15551230001"
    assert DirectoryEntry(number="1001", user_id="bob", sip_uri="sip:bob@pbx.example").dial_target == "sip:bob@pbx.example"
    with pytest.raises(ValidationError, match="unknown time zone"):
        DirectoryEntry(number="1001", user_id="x", timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="sip_uri"):
        DirectoryEntry(number="1001", user_id="x", sip_uri="sip:x@host\r\nVia: evil")


def test_the_directory_file_names_the_bad_entry(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("- {number: '+15551230001', user_id: alice, timezone: Europe/Berlin}\n- {number: '1002', user_id: bob}\n")
    assert [(e.number, e.user_id, e.source) for e in load_directory_file(good)] == [
        ("+15551230001", "alice", "file"),
        ("1002", "bob", "file"),
    ]
    cases = {
        "missing.yaml": None,
        "notalist.yaml": "number: 1\n",
        "badzone.yaml": "- {number: '1001', user_id: a}\n- {number: '1002', user_id: b, timezone: Nowhere}\n",
        "twice.yaml": "- {number: '+1 555 0001', user_id: a}\n- {number: '+15550001', user_id: b}\n",
        "broken.yaml": "- [unclosed\n",
    }
    messages = {
        "missing.yaml": "not found",
        "notalist.yaml": "must hold a list",
        "badzone.yaml": "entry 1: timezone",
        "twice.yaml": r"entries 0 and 1 both list \+15550001",
        "broken.yaml": "not valid YAML",
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(DirectoryError, match=messages[name]):
            load_directory_file(path)


async def test_lookups_both_ways_and_file_entries_replaced_as_a_whole(directory: SqlPhoneDirectory) -> None:
    a, b, c = _number(), _number(), _number()
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    await directory.replace_source("file", [DirectoryEntry(number=a, user_id="alice", tenant=tenant, source="file")])
    await directory.put(DirectoryEntry(number=b, user_id="bob", tenant=tenant, timezone="Asia/Tokyo"))
    assert (await directory.by_number(a[:2] + " " + a[2:])).user_id == "alice"  # type: ignore[union-attr]
    assert (await directory.by_user("bob", tenant)).timezone == "Asia/Tokyo"  # type: ignore[union-attr]
    assert await directory.by_user("bob", "other-tenant") is None
    assert await directory.by_number("not a number") is None
    await directory.replace_source("file", [DirectoryEntry(number=c, user_id="carol", tenant=tenant, source="file")])
    listed = {(e.number, e.user_id, e.source) for e in await directory.entries(tenant)}
    assert listed == {(b, "bob", "admin"), (c, "carol", "file")}  # alice left the file; bob (admin) stays
    assert await directory.remove(b) and not await directory.remove(b)
    assert await directory.by_number(b) is None


async def test_unknown_and_unreadable_callers_are_anonymous(directory: SqlPhoneDirectory) -> None:
    number = _number()
    await directory.put(DirectoryEntry(number=number, user_id="alice"))

    def caller(num: str | None) -> CallerIdentity:
        return CallerIdentity(f"sip:{num}@pbx", num, num, None, False, "agent", ("127.0.0.1", 5060))

    known = await identify_caller(directory, caller(number))
    assert (known.user_id, known.anonymous) == ("alice", False)
    first, second = await identify_caller(directory, caller("+19999999")), await identify_caller(directory, caller(None))
    assert first.anonymous and second.anonymous and first.user_id != second.user_id
    assert first.user_id.startswith("anon-") and len(first.user_id) > 30
