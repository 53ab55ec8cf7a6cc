"""Admin API of the phone side (``/api/admin/phone/...``): the directory (list, add or replace, remove),
"call this user now", and the outbound attempts with their outcomes. Mounted by ``admin_routes`` with the
same bearer-token guard as every admin route, and listed in the same OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, Field

from server.http.admin.openapi import Endpoint
from server.http.admin.routes import _error, _int_query, _json_body, _parse
from server.http.guards import admin_principal
from server.phone.directory import DirectoryEntry, PhoneDirectory, normalize_number
from server.phone.outreach import OutreachRefused


class CallNow(Protocol):
    """``server.phone.outreach.PhoneOutreach.call_now`` (raises ``OutreachRefused``)."""

    async def call_now(
        self,
        user_id: str,
        text: str | None = None,
        expect_digits: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]: ...


class AttemptLog(Protocol):
    """``server.storage.outreach_ledger.SqlOutreachLedger``."""

    async def recent(self, limit: int = 50, tenant: str | None = None) -> list[dict[str, Any]]: ...


class DirectoryEntryBody(BaseModel, extra="forbid"):
    """A phone number of a user: E.164 recommended; ``timezone`` an IANA name (quiet hours are local)."""

    number: str = Field(min_length=2, max_length=32, examples=["+15551230001"])
    user_id: str = Field(min_length=1, max_length=200)
    tenant: str = Field("default", min_length=1, max_length=128)
    timezone: str = Field("UTC", examples=["Europe/Berlin"])
    sip_uri: str | None = Field(None, description="dial this URI instead of the number through the trunk")
    display_name: str | None = Field(None, max_length=200)


class DirectoryList(BaseModel):
    entries: list[DirectoryEntryBody]


class CallNowRequest(BaseModel, extra="forbid"):
    user_id: str = Field(min_length=1, max_length=200)
    tenant: str | None = Field(None, description="the user's tenant; a scoped token: its own; default 'default'")
    text: str | None = Field(
        None, min_length=1, max_length=2000, description="said when answered; default: the greeting"
    )
    expect_digits: str | None = Field(
        None, pattern=r"^[0-9*#A-D]{1,12}$", description="keys that answer the prompt"
    )


class CallNowResult(BaseModel):
    idempotency_key: str = Field(
        description="the prompt's row in the delivery ledger (status dialing, then delivered...)"
    )
    user_id: str
    target: str
    status: str


class PhoneAttempt(BaseModel):
    idempotency_key: str
    user_id: str
    tenant: str = "default"
    status: str = Field(
        description="dialing, retry, delivered, pending (held for the next call), expired, dead_lettered"
    )
    node_id: str | None = None
    detail: str | None = None
    target: str
    attempts: int
    last_outcome: str | None = Field(
        None, description="answered, busy, no_answer, rejected, unreachable, failed"
    )
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    response: str | None = Field(
        None, description="the key pressed after a prompt that expects one ('none': no key)"
    )
    updated_at: datetime


class PhoneAttempts(BaseModel):
    attempts: list[PhoneAttempt] = Field(description="newest first")


class PhoneHandlers:
    def __init__(self, directory: PhoneDirectory, outreach: CallNow | None, attempts: AttemptLog) -> None:
        self.directory = directory
        self.outreach = outreach
        self.attempts = attempts

    async def list_entries(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 1000, 1, 10_000)
        tenant = admin_principal(request).read_scope(request.query.get("tenant"))
        entries = await self.directory.entries(tenant, limit)
        return web.json_response({"entries": [_view(e) for e in entries]})

    async def put_entry(self, request: web.Request) -> web.Response:
        raw = await _json_body(request)
        body = _parse(DirectoryEntryBody, raw)
        requested = raw.get("tenant") if isinstance(raw, dict) else None
        tenant = admin_principal(request).write_tenant(requested)
        entry = _parse(DirectoryEntry, {**body.model_dump(), "tenant": tenant, "source": "admin"})
        await self.directory.put(entry)
        return web.json_response(_view(entry), status=201)

    async def remove_entry(self, request: web.Request) -> web.Response:
        raw = request.match_info["number"]
        try:
            number = normalize_number(raw)
        except ValueError as exc:
            raise _error(web.HTTPBadRequest, str(exc)) from exc
        entry = await self.directory.by_number(number)
        if entry is None or not admin_principal(request).sees(entry.tenant) or not await self.directory.remove(number):
            raise _error(web.HTTPNotFound, f"no directory entry for {number}")  # another tenant's: not revealed
        return web.json_response({"removed": number})

    async def call_now(self, request: web.Request) -> web.Response:
        body = _parse(CallNowRequest, await _json_body(request))
        tenant = admin_principal(request).write_tenant(body.tenant)
        if self.outreach is None:
            raise _error(web.HTTPServiceUnavailable, "this node places no phone calls (sip.enabled is false)")
        try:
            result = await self.outreach.call_now(body.user_id, body.text, body.expect_digits, tenant)
        except OutreachRefused as exc:
            raise _error(web.HTTPConflict, str(exc)) from exc
        return web.json_response(result, status=202)

    async def recent_attempts(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 50, 1, 1000)
        tenant = admin_principal(request).read_scope(request.query.get("tenant"))
        rows = await self.attempts.recent(limit, tenant)
        return web.json_response({"attempts": [_attempt_view(r) for r in rows]})


def _view(entry: DirectoryEntry) -> dict[str, Any]:
    return entry.model_dump(exclude={"source"}) | {"source": entry.source}


def _attempt_view(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("last_attempt_at", "next_attempt_at", "updated_at"):
        if out.get(key) is not None:
            out[key] = datetime.fromtimestamp(float(out[key]), UTC).isoformat()
    return out


def phone_endpoints(
    directory: PhoneDirectory, outreach: CallNow | None, attempts: AttemptLog
) -> list[Endpoint]:
    h = PhoneHandlers(directory, outreach, attempts)
    return [
        Endpoint(
            "GET",
            "/phone/directory",
            h.list_entries,
            "Phone directory: number, user, tenant, time zone",
            (200, DirectoryList, "entries by user"),
            (400, 401, 403),
            query={"tenant": "string", "limit": "integer"},
        ),
        Endpoint(
            "POST",
            "/phone/directory",
            h.put_entry,
            "Add a directory entry (or replace the one with the same number)",
            (201, DirectoryEntryBody, "the stored entry (number normalized)"),
            (400, 401, 403),
            request=DirectoryEntryBody,
        ),
        Endpoint(
            "DELETE",
            "/phone/directory/{number}",
            h.remove_entry,
            "Remove the entry of a number",
            (200, None, "removed"),
            (400, 401, 404),
        ),
        Endpoint(
            "POST",
            "/phone/calls",
            h.call_now,
            "Call this user now: ring the user's phone and say the text (never while the user is in a call)",
            (202, CallNowResult, "dialling; follow it in /phone/attempts"),
            (400, 401, 403, 409, 503),
            request=CallNowRequest,
        ),
        Endpoint(
            "GET",
            "/phone/attempts",
            h.recent_attempts,
            "Outbound phone attempts: status, attempts, last outcome, next attempt, key pressed",
            (200, PhoneAttempts, "newest first"),
            (400, 401, 403),
            query={"limit": "integer", "tenant": "string"},
        ),
    ]
