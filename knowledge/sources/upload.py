"""HTTP upload of documents: aiohttp routes the server mounts behind its authentication.

- ``POST   /api/knowledge/documents``            multipart: ``file`` (required), ``doc_id``, ``tenant``,
  ``tags`` (comma separated), ``title``. 202 with ``doc_id``, ``tenant``, ``version``, ``status``,
  ``status_url``; 413 over ``max_upload_bytes``; 415 for a content type outside ``allowed_content_types``.
- ``GET    /api/knowledge/documents``            list (query: ``tenant``, ``status``, ``limit``, ``offset``).
- ``GET    /api/knowledge/documents/{doc_id}``   status (queued / processing / ready / failed + error).
- ``DELETE /api/knowledge/documents/{doc_id}``   202; 404 if unknown.
A document id is unique within its tenant; the single-document routes take ``?tenant=`` (default
``default``). The server's authentication sets ``request[TENANT_SCOPE]``: a tenant name limits every
route to that tenant (another tenant asked for is 403), None leaves the choice to the request.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web

from knowledge.config import KnowledgeConfig
from knowledge.events import DocumentEvent
from knowledge.ingest import Ingestor
from knowledge.parsers import guess_content_type
from knowledge.stores.base import DEFAULT_TENANT

PREFIX = "/api/knowledge/documents"
TENANT_SCOPE = web.RequestKey("knowledge_tenant_scope", str)  # see the module docstring
_READ_BLOCK = 64 * 1024


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _OtherTenant(Exception):
    pass


def _tenant(request: web.Request, requested: str | None, default: str | None = DEFAULT_TENANT) -> str | None:
    """The tenant a request acts on: its scope if it has one (asking for another is refused), else
    ``requested``, else ``default``."""
    scope = request.get(TENANT_SCOPE)
    if scope is not None:
        if requested and requested != scope:
            raise _OtherTenant(f"this token is scoped to tenant {scope!r}")
        return str(scope)
    return requested or default


def status_url(doc_id: str, tenant: str = DEFAULT_TENANT) -> str:
    url = f"{PREFIX}/{quote(doc_id, safe='')}"
    return url if tenant == DEFAULT_TENANT else f"{url}?tenant={quote(tenant, safe='')}"


def upload_routes(ingestor: Ingestor, config: KnowledgeConfig) -> list[web.RouteDef]:
    """The knowledge document routes, bound to ``ingestor``; add them with ``app.add_routes(...)``."""

    async def upload(request: web.Request) -> web.Response:
        limit = config.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + 64 * 1024:
            return _error(413, f"upload larger than the limit of {limit} bytes")
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return _error(400, "expected a multipart/form-data body with a 'file' part")
        fields: dict[str, str] = {}
        data: bytes | None = None
        filename = content_type = ""
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                filename = part.filename or "upload"
                content_type = guess_content_type(filename, part.headers.get("Content-Type"))
                if content_type not in config.allowed_content_types:
                    return _error(
                        415,
                        f"content type {content_type!r} of {filename!r} is not accepted; "
                        f"allowed: {config.allowed_content_types}",
                    )
                buf = bytearray()
                while chunk := await part.read_chunk(_READ_BLOCK):
                    buf.extend(chunk)
                    if len(buf) > limit:
                        return _error(413, f"file {filename!r} is larger than the limit of {limit} bytes")
                data = bytes(buf)
            elif part.name:
                fields[part.name] = (await part.text())[:1024]
        if data is None:
            return _error(400, "multipart body has no 'file' part")
        try:
            tenant = _tenant(request, fields.get("tenant")) or DEFAULT_TENANT
        except _OtherTenant as exc:
            return _error(403, str(exc))
        try:
            event = DocumentEvent(
                op="upsert",
                doc_id=fields.get("doc_id") or uuid.uuid4().hex,
                tenant=tenant,
                source="upload",
                tags=[t.strip() for t in fields.get("tags", "").split(",") if t.strip()],
                title=fields.get("title") or filename,
                content=data,
                content_type=content_type,
            )
        except ValueError as exc:
            return _error(400, f"invalid upload fields: {exc}")
        record = await ingestor.submit(event)
        url = status_url(record.doc_id, record.tenant)
        body = {
            "doc_id": record.doc_id,
            "tenant": record.tenant,
            "version": record.version,
            "status": record.status,
            "status_url": url,
        }
        return web.json_response(body, status=202, headers={"Location": url})

    async def find(request: web.Request) -> Any:
        """The document the path and ``?tenant=`` name, or an error response."""
        doc_id = request.match_info["doc_id"]
        try:
            tenant = _tenant(request, request.query.get("tenant")) or DEFAULT_TENANT
        except _OtherTenant as exc:
            return _error(403, str(exc))
        record = await ingestor.status(doc_id, tenant)
        return record if record is not None else _error(404, f"no document {doc_id!r} in tenant {tenant!r}")

    async def get_status(request: web.Request) -> web.Response:
        record = await find(request)
        if isinstance(record, web.Response):
            return record
        return web.json_response(_public(record.as_dict()))

    async def list_documents(request: web.Request) -> web.Response:
        q = request.query
        try:
            limit, offset = min(int(q.get("limit", 100)), 1000), int(q.get("offset", 0))
        except ValueError:
            return _error(400, "limit and offset must be integers")
        try:
            tenant = _tenant(request, q.get("tenant"), default=None)
        except _OtherTenant as exc:
            return _error(403, str(exc))
        records = await ingestor.store.list_documents(tenant, q.get("status"), limit, offset)
        return web.json_response({"documents": [_public(r.as_dict()) for r in records]})

    async def delete(request: web.Request) -> web.Response:
        record = await find(request)
        if isinstance(record, web.Response):
            return record
        doc_id = record.doc_id
        await ingestor.submit(
            DocumentEvent(op="delete", doc_id=doc_id, tenant=record.tenant, source=record.source)
        )
        return web.json_response({"doc_id": doc_id, "status": "deleting"}, status=202)

    return [
        web.post(PREFIX, upload),
        web.get(PREFIX, list_documents),
        web.get(PREFIX + "/{doc_id:.+}", get_status),
        web.delete(PREFIX + "/{doc_id:.+}", delete),
    ]


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "status_url": status_url(record["doc_id"], record["tenant"])}
