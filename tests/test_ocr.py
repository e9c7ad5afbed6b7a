"""Scanned pages: a PDF page that is only an image is read by Tesseract when it is installed;
without it the file's line says which page and what to install."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from qa.answer.pipeline import QA
from qa.index.store import build_index
from qa.ingest.corpus import load_paths
from qa.ingest.ocr import tesseract
from tests.conftest import ROOT
from tests.fakes import ScriptedGenerator
from tests.test_corpus import make_pdf

TYPED = "The lighthouse log starts in spring."
SCANNED = ["The lighthouse keeper", "is Tomas Ferreira.", "He rings the bell at noon."]
HINT = "install tesseract-ocr to read scanned pages"


def scanned_page(lines: list[str]) -> bytes:
    """A one-page PDF that holds only a picture of the lines (no text layer)."""
    image = Image.new("RGB", (1700, 900), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=64)
    for i, line in enumerate(lines):
        draw.text((120, 120 + 150 * i), line, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PDF", resolution=200)
    return buffer.getvalue()


def typed_then_scanned(path: Path) -> Path:
    """A two-page PDF: page 1 has a text layer, page 2 is a scan."""
    writer = PdfWriter()
    for data in (make_pdf([TYPED]), scanned_page(SCANNED)):
        writer.append(PdfReader(io.BytesIO(data)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path


def test_the_scanned_page_has_no_text_layer(tmp_path) -> None:
    reader = PdfReader(typed_then_scanned(tmp_path / "log.pdf"))
    assert [page.extract_text().strip() for page in reader.pages] == [TYPED, ""]
    assert len(reader.pages[1].images) == 1


@pytest.mark.skipif(tesseract() is None, reason="tesseract-ocr is not installed")
def test_scanned_page_is_read_and_cited_by_page(tmp_path, settings, embedder) -> None:
    typed_then_scanned(tmp_path / "docs" / "log.pdf")
    docs, skipped = load_paths([tmp_path / "docs"])
    assert skipped == []
    [doc] = docs
    first, second = (doc.text[a:b] for a, b in doc.pages)
    assert first == TYPED
    assert second.split() == " ".join(SCANNED).split()
    index = build_index([tmp_path / "docs"], tmp_path / "index", settings, embedder).index
    qa = QA(settings, index, embedder,
            ScriptedGenerator("The lighthouse keeper is Tomas Ferreira [1]."))
    [citation] = qa.answer("Who is the lighthouse keeper?").citations
    assert citation.page == 2
    assert "Tomas Ferreira" in citation.snippet


_LOAD = ("import sys\n{hide}from qa.ingest.corpus import load_paths\n"
         "docs, skipped = load_paths(sys.argv[1:])\n"
         "print([[d.text[a:b] for a, b in d.pages] for d in docs])\n"
         "print(*skipped, sep='\\n')\n")


@pytest.mark.parametrize("without", ["the tesseract program", "the ocr extra"])
def test_without_ocr_the_line_says_which_page_has_no_text_layer(tmp_path, without) -> None:
    mixed = typed_then_scanned(tmp_path / "log.pdf")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scanned_page(SCANNED))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    hide = ""
    if without == "the tesseract program":
        (tmp_path / "empty").mkdir()
        env["PATH"] = str(tmp_path / "empty")
    else:
        hide = "sys.modules['pytesseract'] = None\n"
    run = subprocess.run([sys.executable, "-c", _LOAD.format(hide=hide), str(mixed), str(scan)],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout.splitlines() == [
        f"[['{TYPED}', '']]",
        f"read part of {mixed}: page 2 has no text layer; {HINT}",
        f"skipped {scan}: page 1 has no text layer; {HINT}",
    ]
