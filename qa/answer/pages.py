"""The page of each citation into a paged document (a PDF)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from qa.types import Citation, Document


def with_pages(citations: list[Citation], documents: Mapping[str, Document]) -> list[Citation]:
    """The citations, each with the 1-based page its cited sentence starts on (None for a
    document without pages)."""
    out = []
    for c in citations:
        doc = documents.get(c.doc_id)
        out.append(replace(c, page=doc.page_at(c.start) if doc is not None else None))
    return out
