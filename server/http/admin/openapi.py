"""The admin API's OpenAPI 3.1 document, generated from the route table and the pydantic models.

``openapi-pydantic`` gives the document's objects and turns each referenced model into a component
schema (``construct_open_api_with_schema_class``); this module only walks the ``Endpoint``s that
``server.http.admin.routes`` also mounts, so the document cannot list a route that is not served or miss
one that is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openapi_pydantic import (
    Components,
    Info,
    MediaType,
    OpenAPI,
    Operation,
    Parameter,
    PathItem,
    RequestBody,
    Response,
    SecurityScheme,
)
from openapi_pydantic.util import PydanticSchema, construct_open_api_with_schema_class
from pydantic import BaseModel

from server.http.admin.models import ErrorBody

_ERRORS = {
    400: "invalid input",
    401: "missing or wrong admin token",
    403: "another tenant than the admin token's",
    404: "not found (or of another tenant than the admin token's)",
    409: "not allowed now",
    503: "not available on this node",
}


@dataclass(frozen=True)
class Endpoint:
    """One route of the admin API: how it is served and how it is documented."""

    method: str
    path: str  # relative to the API prefix, aiohttp syntax: "/campaigns/{campaign_id}"
    handler: Any
    summary: str
    ok: tuple[int, type[BaseModel] | None, str]  # success status, body model, description
    errors: tuple[int, ...] = (401,)
    request: type[BaseModel] | None = None
    query: dict[str, str] = field(default_factory=dict)  # name -> JSON type
    public: bool = False  # no token needed


def openapi_document(endpoints: Sequence[Endpoint], prefix: str) -> dict[str, Any]:
    paths: dict[str, PathItem] = {}
    for e in endpoints:
        item = paths.setdefault(prefix + e.path, PathItem())
        setattr(item, e.method.lower(), _operation(e))
    document = OpenAPI(
        info=Info(title="voice-agent admin API", version="1"),
        paths=paths,
        security=[{"bearer": []}],
        components=Components(securitySchemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )
    built = construct_open_api_with_schema_class(document)
    return built.model_dump(mode="json", by_alias=True, exclude_none=True)


def _operation(e: Endpoint) -> Operation:
    status, model, description = e.ok
    responses: dict[str, Any] = {str(status): _response(model, description)}
    responses.update({str(code): _response(ErrorBody, _ERRORS[code]) for code in e.errors})
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", e.path)
    ] + [{"name": n, "in": "query", "schema": {"type": t}} for n, t in e.query.items()]
    operation: dict[str, Any] = {"summary": e.summary, "responses": responses}
    if parameters:
        operation["parameters"] = [Parameter.model_validate(p) for p in parameters]
    if e.request is not None:
        operation["requestBody"] = RequestBody(required=True, content={"application/json": _media(e.request)})
    if e.public:
        operation["security"] = []
    return Operation.model_validate(operation)


def _response(model: type[BaseModel] | None, description: str) -> Response:
    if model is None:
        return Response(description=description)
    return Response(description=description, content={"application/json": _media(model)})


def _media(model: type[BaseModel]) -> MediaType:
    """A body whose schema is ``model``'s (a ``PydanticSchema``, turned into a component reference)."""
    return MediaType.model_validate({"schema": PydanticSchema[Any].model_validate({"schema_class": model})})
