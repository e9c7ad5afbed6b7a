"""Optional OCR of scanned pages through Tesseract (`pytesseract`, the `ocr` extra, and the
Debian package `tesseract-ocr`)."""

from __future__ import annotations

import functools
from typing import Any

# Seconds one page image may take; a hostile image gives up instead of hanging the build.
OCR_TIMEOUT = 120
INSTALL_HINT = "install tesseract-ocr to read scanned pages"


@functools.cache
def tesseract() -> Any | None:
    """The pytesseract module when it and the tesseract program are both installed."""
    try:
        import pytesseract
    except ImportError:
        return None
    try:
        pytesseract.get_tesseract_version()
    except (pytesseract.TesseractNotFoundError, OSError):
        return None
    return pytesseract


def ocr_images(images: list[Any]) -> str:
    """The text Tesseract reads in PIL images, one block per image ("" when unavailable)."""
    engine = tesseract()
    if engine is None:
        return ""
    texts = (str(engine.image_to_string(image, timeout=OCR_TIMEOUT)).strip()
             for image in images)
    return "\n\n".join(t for t in texts if t)
