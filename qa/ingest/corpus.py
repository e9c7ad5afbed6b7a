"""Load documents (.txt, .md, .html, .pdf) from files and folders into `Document`s."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString
from pypdf import PdfReader

from qa.types import Document

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
_MAX_TITLE = 200
_DROP_TAGS = ("script", "style", "noscript", "template", "title")
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section",
    "summary", "table", "tr", "ul",
})
# fmt: on
_MD_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")


@dataclass(frozen=True)
class Skipped:
    """A file (or given path) that was not loaded, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


class _Skip(Exception):
    """Internal: raised by extractors with the skip reason as message."""


def document_id(text: str) -> str:
    """Stable id of a text: first 16 hex chars of the sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]



def _one_line(value: object, limit: int = 160) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line_title(text: str, stem: str) -> str:
    for line in text.split("\n"):
        line = line.strip()
        if line:
            return line if len(line) <= _MAX_TITLE else stem
    return stem


def _decode_text(data: bytes) -> str:
    if b"\x00" in data:
        raise _Skip("binary file (contains NUL bytes)")
    try:
        return _normalise_newlines(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _Skip("not valid UTF-8 text") from None


def _markdown_title(text: str, stem: str) -> str:
    for line in text.split("\n"):
        match = _MD_H1.match(line)
        if match:
            return match.group(1).strip()
    return _first_line_title(text, stem).lstrip("#").strip() or stem


def _html(data: bytes, stem: str) -> tuple[str, str]:
    soup = BeautifulSoup(_decode_text(data), "html.parser")
    heads = [" ".join(t.get_text(" ").split()) for t in (soup.title, soup.find("h1")) if t]
    title = next((h[:_MAX_TITLE] for h in heads if h), stem)
    for tag in soup.find_all(list(_DROP_TAGS)):
        tag.decompose()
    for tag in soup.find_all(["br", "td", "th"]):
        tag.insert_after(" ")  # keep cells and lines from running together
    blocks: list[list[str]] = []
    current: object = None
    for node in soup.descendants:
        if not isinstance(node, NavigableString) or isinstance(node, PreformattedString):
            continue  # tags, comments, doctypes, CDATA
        block = next((p for p in node.parents if p.name in _BLOCK_TAGS), None)
        if block is not current or not blocks:
            blocks.append([])
            current = block
        blocks[-1].append(str(node))
    paragraphs = (" ".join("".join(parts).split()) for parts in blocks)
    return "\n\n".join(p for p in paragraphs if p), title


def _pdf(data: bytes, stem: str) -> tuple[str, str]:
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise _Skip("encrypted PDF (password required)")
    text = _normalise_newlines("\n\n".join(page.extract_text() or "" for page in reader.pages))
    if not text.strip():
        raise _Skip("no extractable text in PDF (scanned or image-only?)")
    meta_title = reader.metadata.title if reader.metadata is not None else None
    title = " ".join(meta_title.split())[:_MAX_TITLE] if isinstance(meta_title, str) else ""
    return text, title or _first_line_title(text, stem)


def _extract(path: Path, data: bytes) -> tuple[str, str]:
    """Return (text, title) of a file's bytes, or raise (`_Skip` for expected problems)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf(data, path.stem)
    if suffix in (".html", ".htm"):
        return _html(data, path.stem)
    text = _decode_text(data)
    if suffix == ".txt":
        return text, _first_line_title(text, path.stem)
    return text, _markdown_title(text, path.stem)


def _load_file(path: Path, source: str) -> Document | Skipped:
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        shown = f"'{path.suffix}'" if path.suffix else "(no suffix)"
        return Skipped(path, f"unsupported file type {shown}")
    if path.is_symlink() and not path.exists():
        return Skipped(path, "unreadable: broken symlink")
    if path.exists() and not path.is_file():
        return Skipped(path, "unreadable: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Skipped(path, f"unreadable: {exc.strerror or _one_line(exc)}")
    if not data:
        return Skipped(path, "empty file")
    try:
        text, title = _extract(path, data)
    except _Skip as skip:
        return Skipped(path, str(skip))
    except Exception as exc:  # noqa: BLE001 - parsers raise many error types; never abort
        kind = {".pdf": "PDF", ".html": "HTML", ".htm": "HTML"}.get(path.suffix.lower(), "file")
        if kind == "PDF" and b"/Encrypt" in data:
            return Skipped(path, f"encrypted PDF (cannot decrypt: {_one_line(exc)})")
        return Skipped(path, f"could not parse {kind} ({_one_line(exc) or type(exc).__name__})")
    if not text.strip():
        return Skipped(path, "no text (whitespace only)")
    return Document(id=document_id(text), source=source, title=title, text=text)


def _walk(base: Path, folder: Path, seen: set[str]) -> Iterator[tuple[Path, str] | Skipped]:
    """(path, source) of non-hidden entries under `folder` that are not folders, sorted."""
    if os.path.realpath(folder) in seen:
        return  # symlink loop
    seen.add(os.path.realpath(folder))
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(folder, f"unreadable folder: {exc.strerror or _one_line(exc)}")
        return
    for entry in (e for e in entries if not e.name.startswith(".")):
        path = folder / entry.name
        if entry.is_dir():
            yield from _walk(base, path, seen)
        else:
            yield path, path.relative_to(base).as_posix()


def load_paths(paths: Sequence[str | Path]) -> tuple[list[Document], list[Skipped]]:
    """Load files and folders (recursively); return documents sorted by source, and skips."""
    found: list[tuple[Document, Path]] = []
    skipped: list[Skipped] = []
    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path):
            items: Iterator[tuple[Path, str] | Skipped] = iter([Skipped(path, "does not exist")])
        elif path.is_dir():
            items = _walk(path, path, set())
        else:
            items = iter([(path, path.name)])
        for item in items:
            if isinstance(item, Skipped):
                skipped.append(item)
                continue
            result = _load_file(*item)
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                found.append((result, item[0]))
    found.sort(key=lambda pair: (pair[0].source, pair[0].id, str(pair[1])))
    documents: list[Document] = []
    first: dict[str, Document] = {}
    for doc, path in found:
        if doc.id in first:
            skipped.append(Skipped(path, f"duplicate of {first[doc.id].source}"))
        else:
            first[doc.id] = doc
            documents.append(doc)
    skipped.sort(key=lambda s: (str(s.path), s.reason))
    return documents, skipped
