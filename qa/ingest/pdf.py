"""PDF files: the text of each page and its span in the document; scanned pages OCRed."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from pypdf import PdfReader

from qa.ingest.ocr import INSTALL_HINT, ocr_images, tesseract
from qa.ingest.skip import SkipFile

PAGE_BREAK = "\n\n"  # what stands between two pages in the document's text
_MAX_TITLE = 200


@dataclass(frozen=True)
class PdfText:
    """A PDF's text, its title, each page's (start, end) span, and the scanned pages (1-based)
    left unread because OCR is not installed."""

    text: str
    title: str
    pages: tuple[tuple[int, int], ...]
    unread: tuple[int, ...] = ()


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _images(page: Any) -> list[Any]:
    """The page's embedded images as PIL images (a scanned page is one such image)."""
    try:
        return [image.image for image in page.images if image.image is not None]
    except Exception:  # noqa: BLE001 - pypdf and Pillow raise many kinds on odd images
        return []


def _page_text(page: Any, unread: list[int], number: int) -> str:
    text = _normalise_newlines(page.extract_text() or "")
    if text.strip():
        return text
    images = _images(page)
    if not images:
        return text  # a blank page
    if tesseract() is None:
        unread.append(number)
        return text
    return _normalise_newlines(ocr_images(images))


def unread_note(pages: tuple[int, ...]) -> str:
    """The line that says which pages have no text layer and what reads them."""
    if len(pages) == 1:
        return f"page {pages[0]} has no text layer; {INSTALL_HINT}"
    shown = ", ".join(map(str, pages[:5])) + (f" and {len(pages) - 5} more" if len(pages) > 5
                                              else "")
    return f"pages {shown} have no text layer; {INSTALL_HINT}"


def read_pdf(data: bytes) -> PdfText:
    """The text of a PDF's bytes with its page spans; SkipFile for an encrypted file."""
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise SkipFile("encrypted PDF (password required)")
    unread: list[int] = []
    texts = [_page_text(page, unread, n) for n, page in enumerate(reader.pages, 1)]
    spans, cursor = [], 0
    for text in texts:
        spans.append((cursor, cursor + len(text)))
        cursor += len(text) + len(PAGE_BREAK)
    meta_title = reader.metadata.title if reader.metadata is not None else None
    title = " ".join(meta_title.split())[:_MAX_TITLE] if isinstance(meta_title, str) else ""
    return PdfText(text=PAGE_BREAK.join(texts), title=title, pages=tuple(spans),
                   unread=tuple(unread))
