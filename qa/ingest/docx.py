"""Word files (.docx) through python-docx: headings as markdown headings, tables as rows of
cells joined with " | ", in document order."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from qa.ingest.skip import SkipFile

CELL_SEPARATOR = " | "
# A .docx is a zip of XML parts; one that expands beyond this is refused, not parsed.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound file of .doc and protected files
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_MAX_TITLE = 200


def _check_container(data: bytes) -> None:
    """SkipFile with a clear reason when the bytes are no readable .docx package."""
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED in data:
            raise SkipFile("password-protected Word file (save it without a password)")
        raise SkipFile("not a .docx file (an old binary .doc? save it as .docx)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            names = set(package.namelist())
            unpacked = sum(info.file_size for info in package.infolist())
    except zipfile.BadZipFile:
        raise SkipFile("corrupt Word file (not a zip package)") from None
    if not {"[Content_Types].xml", "word/document.xml"} <= names:
        raise SkipFile("not a Word file (a zip package without word/document.xml)")
    if unpacked > MAX_UNPACKED_BYTES:
        raise SkipFile(f"Word file unpacks to {unpacked // 2**20} MB "
                       f"(more than {MAX_UNPACKED_BYTES // 2**20} MB)")


def _heading_level(paragraph: Any) -> int:
    """1-6 for a Title or Heading paragraph, 0 for any other."""
    name = str(getattr(paragraph.style, "name", "") or "")
    if name == "Title":
        return 1
    if name.startswith("Heading "):
        level = name.removeprefix("Heading ").strip()
        return min(int(level), 6) if level.isdigit() else 0
    return 0


def _paragraph(paragraph: Any) -> str:
    text = " ".join(paragraph.text.split())
    level = _heading_level(paragraph)
    return f"{'#' * level} {text}" if level and text else text


def _table(table: Any) -> list[str]:
    """One line per row; a merged cell, which python-docx repeats, is written once."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(CELL_SEPARATOR.join(cells))
    return rows


def read_docx(data: bytes) -> tuple[str, str]:
    """(text, title) of a .docx file's bytes; SkipFile for a protected or broken file."""
    import docx
    from docx.table import Table

    _check_container(data)
    document = docx.Document(io.BytesIO(data))
    blocks: list[str] = []
    title = " ".join((document.core_properties.title or "").split())[:_MAX_TITLE]
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = _table(item)
            if rows:
                blocks.append("\n".join(rows))
            continue
        text = _paragraph(item)
        if text:
            blocks.append(text)
            if not title and text.startswith("#"):
                title = text.lstrip("#").strip()[:_MAX_TITLE]
    return "\n\n".join(blocks), title
