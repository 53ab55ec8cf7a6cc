"""``BusModel``: the versioned JSON body every topic's schema derives from.

Every model carries ``schema_version``; a consumer accepts the versions it knows and dead-letters the rest
(`parse` raises `PoisonMessage` with the reason, never a bare validation error). Bodies are UTF-8 JSON.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

from messaging.bus import PoisonMessage


class BusModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: int = 1

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def parse(cls, body: bytes) -> Self:
        """Decode a message body; `PoisonMessage` says why it cannot be used."""
        try:
            model = cls.model_validate_json(cls.prepare(body))
        except ValidationError as exc:
            raise PoisonMessage(f"invalid {cls.__name__}: {validation_reasons(exc)}"[:900]) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise PoisonMessage(f"{cls.__name__} body is not JSON: {exc}") from exc
        if model.schema_version not in cls.supported_versions():
            raise PoisonMessage(
                f"{cls.__name__} schema_version {model.schema_version} not supported "
                f"(supported: {sorted(cls.supported_versions())})"
            )
        return model

    @classmethod
    def prepare(cls, body: bytes) -> bytes:
        """Hook for a topic that accepts an older wire shape: rewrite ``body`` before validation."""
        return body

    @classmethod
    def supported_versions(cls) -> set[int]:
        return {1}


def validation_reasons(exc: ValidationError) -> str:
    """``field: message; ...`` of a validation error, the form dead-letter reasons and API errors use."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)
    )
