"""One browser session's own index of uploaded documents: limits checked, files copied to a
temporary folder of its own and indexed there; its PDFs get random ids for the browser's viewer."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.config import Settings
from qa.errors import IndexLoadError, UploadError
from qa.index.embedding import Embedder
from qa.index.store import Index, build_index
from qa.ingest.corpus import SUPPORTED_SUFFIXES
from qa.progress import Reporter, silent_reporter

UPLOAD_SUFFIXES = SUPPORTED_SUFFIXES
PDF_MAGIC = b"%PDF-"


@dataclass
class Uploads:
    """One browser session's own index of uploaded files, in its own temporary folder."""

    folder: Path
    index: Index
    names: list[str]
    key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    pdfs: dict[str, str] = field(default_factory=dict)  # random id -> name, of the PDF files

    def close(self) -> None:
        """Delete the session's files."""
        self.pdfs.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def check_uploads(paths: Sequence[str | Path], settings: Settings) -> None:
    """UploadError when the files break the count, size or type limits of settings."""
    mb, count = settings.max_upload_mb, settings.max_upload_files
    if not paths:
        raise UploadError("no files were uploaded")
    if len(paths) > count:
        raise UploadError(f"too many files: {len(paths)} uploaded, at most {count} allowed")
    for path in map(Path, paths):
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise UploadError(f"{path.name}: unsupported file type (use "
                              f"{', '.join(UPLOAD_SUFFIXES)})")
        size = path.stat().st_size
        if size > mb * 1024 * 1024:
            raise UploadError(f"{path.name} is {size / 1024 / 1024:.1f} MB; the limit is "
                              f"{mb:g} MB per file")


def index_uploads(paths: Sequence[str | Path], settings: Settings, embedder: Embedder,
                  report: Reporter = silent_reporter) -> Uploads:
    """Check the limits, copy the files to a fresh folder and index them there."""
    check_uploads(paths, settings)
    folder = Path(tempfile.mkdtemp(prefix="qa-upload-"))
    try:
        docs = folder / "docs"
        docs.mkdir()
        names = []
        for path in map(Path, paths):
            target = docs / path.name
            shutil.copyfile(path, target)
            names.append(path.name)
        try:
            result = build_index([docs], folder / "index", settings, embedder, report)
        except IndexLoadError as exc:
            raise UploadError(str(exc).replace(str(docs) + os.sep, "")) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    pdfs = {secrets.token_urlsafe(16): name for name in dict.fromkeys(names)
            if _is_pdf(docs / name)}
    return Uploads(folder=folder, index=result.index, names=names, pdfs=pdfs)


def _is_pdf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return path.suffix.lower() == ".pdf" and fh.read(len(PDF_MAGIC)) == PDF_MAGIC
