"""Load documents (.txt, .md, .html, .pdf, .docx) from files and folders into `Document`s."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PreformattedString

from qa.ingest.docx import read_docx
from qa.ingest.pdf import read_pdf, unread_note
from qa.ingest.skip import SkipFile
from qa.types import Document

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
_KINDS = {".pdf": "PDF", ".html": "HTML", ".htm": "HTML", ".docx": "Word file"}
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
    """A file (or given path) that was not loaded, and why; `partial`: the file was loaded
    but part of it could not be read (the reason says which)."""

    path: Path
    reason: str
    partial: bool = False

    def __str__(self) -> str:
        return f"{'read part of' if self.partial else 'skipped'} {self.path}: {self.reason}"


_Skip = SkipFile


@dataclass(frozen=True)
class _Text:
    """What a reader made of one file."""

    text: str
    title: str
    pages: tuple[tuple[int, int], ...] = ()
    note: str = ""  # what could not be read of a file that was read otherwise


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


def _pdf(data: bytes, stem: str) -> _Text:
    pdf = read_pdf(data)
    note = unread_note(pdf.unread) if pdf.unread else ""
    if not pdf.text.strip():
        raise _Skip(note or "no extractable text in PDF (blank pages, or text drawn as shapes)")
    return _Text(pdf.text, pdf.title or _first_line_title(pdf.text, stem), pdf.pages, note)


def _docx(data: bytes, stem: str) -> _Text:
    text, title = read_docx(data)
    return _Text(text, title or _first_line_title(text, stem))


def _extract(path: Path, data: bytes) -> _Text:
    """What the reader of the file's kind makes of its bytes, or raise (`_Skip` for expected
    problems)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _pdf(data, path.stem)
    if suffix == ".docx":
        return _docx(data, path.stem)
    if suffix in (".html", ".htm"):
        return _Text(*_html(data, path.stem))
    text = _decode_text(data)
    if suffix == ".txt":
        return _Text(text, _first_line_title(text, path.stem))
    return _Text(text, _markdown_title(text, path.stem))


def load_file(path: Path, source: str) -> tuple[Document | None, Skipped | None]:
    """The document read from path (None when skipped), and what was not read of it."""
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        shown = f"'{path.suffix}'" if path.suffix else "(no suffix)"
        return None, Skipped(path, f"unsupported file type {shown}")
    if path.is_symlink() and not path.exists():
        return None, Skipped(path, "unreadable: broken symlink")
    if path.exists() and not path.is_file():
        return None, Skipped(path, "unreadable: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, Skipped(path, f"unreadable: {exc.strerror or _one_line(exc)}")
    if not data:
        return None, Skipped(path, "empty file")
    try:
        read = _extract(path, data)
    except _Skip as skip:
        return None, Skipped(path, str(skip))
    except Exception as exc:  # noqa: BLE001 - parsers raise many error types; never abort
        kind = _KINDS.get(path.suffix.lower(), "file")
        if kind == "PDF" and b"/Encrypt" in data:
            return None, Skipped(path, f"encrypted PDF (cannot decrypt: {_one_line(exc)})")
        return None, Skipped(path, f"could not parse {kind} "
                                   f"({_one_line(exc) or type(exc).__name__})")
    if not read.text.strip():
        return None, Skipped(path, "no text (whitespace only)")
    doc = Document(id=document_id(read.text), source=source, title=read.title, text=read.text,
                   pages=read.pages)
    return doc, Skipped(path, read.note, partial=True) if read.note else None


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


Reader = Callable[[Path, str], tuple[Document | None, Skipped | None]]


def load_paths(paths: Sequence[str | Path], read: Reader = load_file,
               ) -> tuple[list[Document], list[Skipped]]:
    """Load files and folders (recursively) with read (default: in this process); return
    documents sorted by source, and skips."""
    files, skipped = files_under(paths)
    results = [(path, *read(path, source)) for path, source in files]
    return collected(results, skipped)


def files_under(paths: Sequence[str | Path]) -> tuple[list[tuple[Path, str]], list[Skipped]]:
    """(path, source) of every file given or under a given folder, in order, and the paths
    that could not be listed."""
    files: list[tuple[Path, str]] = []
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
            else:
                files.append(item)
    return files, skipped


def collected(results: Sequence[tuple[Path, Document | None, Skipped | None]],
              skipped: Sequence[Skipped]) -> tuple[list[Document], list[Skipped]]:
    """What reading each file gave, as documents sorted by source (duplicates skipped) and
    every skip, sorted."""
    skipped = list(skipped)
    found: list[tuple[Document, Path]] = []
    for path, doc, skip in results:
        if skip is not None:
            skipped.append(skip)
        if doc is not None:
            found.append((doc, path))
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
