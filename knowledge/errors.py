"""Exception hierarchy of the knowledge package."""

from __future__ import annotations


class KnowledgeError(Exception):
    """Base class of every error raised by ``knowledge``."""


class EmbeddingError(KnowledgeError):
    """An embedding backend could not be created or failed to embed."""


class ParseError(KnowledgeError):
    """A document could not be parsed into text (broken file, unsupported type)."""


class UnsupportedContentType(ParseError):
    """The content type of a document has no parser."""


class StoreError(KnowledgeError):
    """A knowledge store failed to read or write."""
