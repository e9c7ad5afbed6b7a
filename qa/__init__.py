"""Offline question answering over documents, with cited sources."""

from qa.config import Settings
from qa.types import Answer, Chunk, Citation, Document, Hit

__all__ = ["Answer", "Chunk", "Citation", "Document", "Hit", "Settings"]
