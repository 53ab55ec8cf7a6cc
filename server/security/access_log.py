"""An access log that never holds a secret.

aiohttp's default access log writes the request line, query string included, and the Referer. Tickets
travel in WebSocket query strings (browsers cannot set headers there) and a client might still send an
old ``?token=``: their values are replaced by ``[redacted]``; headers (Authorization, Referer) are not
logged at all.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

SECRET_PARAMETERS = frozenset(
    {"ticket", "token", "access_token", "id_token", "credential", "password", "secret", "key", "auth"}
)


def redact_query(query_string: str) -> str:
    """``query_string`` with the values of secret-looking parameters replaced."""
    if not query_string:
        return ""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return urlencode(
        [(k, "[redacted]" if k.lower() in SECRET_PARAMETERS else v) for k, v in pairs], safe="[]/:"
    )


class RedactingAccessLogger(AbstractAccessLogger):
    """``<client> "<METHOD> <path>?<redacted query>" <status> <bytes> <seconds>``."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        query = redact_query(request.query_string)
        target = request.path + (f"?{query}" if query else "")
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            request.method,
            target,
            response.status,
            response.body_length,
            time,
        )
