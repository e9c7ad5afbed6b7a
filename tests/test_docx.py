"""Word files: headings, paragraphs and tables in document order; protected and corrupt files
are one clear skip line; a question about a table cell is answered from it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx

from qa.answer.pipeline import QA
from qa.index.store import build_index
from qa.ingest.corpus import Skipped, load_paths
from tests.fakes import ScriptedGenerator

TEXT = ("# Fleet report\n\n"
        "The fleet grew this year.\n\n"
        "## Ships by port\n\n"
        "Port | Ships | Captain\n"
        "Lisbon | 14 | Ana Reis\n"
        "Porto | 9 | Rui Costa\n\n"
        "All ships passed inspection.")


def _fleet(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Fleet report", level=1)
    document.add_paragraph("The fleet grew this year.")
    document.add_heading("Ships by port", level=2)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(table.rows, [("Port", "Ships", "Captain"),
                                        ("Lisbon", "14", "Ana Reis"),
                                        ("Porto", "9", "Rui Costa")], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("All ships passed inspection.")
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def test_docx_keeps_headings_and_table_rows(tmp_path) -> None:
    docs, skipped = load_paths([_fleet(tmp_path / "fleet.docx")])
    assert skipped == []
    [doc] = docs
    assert (doc.source, doc.title, doc.text, doc.pages) == ("fleet.docx", "Fleet report", TEXT,
                                                            ())


def test_merged_cells_are_written_once(tmp_path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Both columns"
    table.cell(1, 0).text, table.cell(1, 1).text = "left", "right"
    document.save(str(tmp_path / "merged.docx"))
    [doc], _ = load_paths([tmp_path / "merged.docx"])
    assert doc.text == "Both columns\nleft | right"


def test_protected_corrupt_and_hostile_word_files_are_one_line_each(tmp_path) -> None:
    # A password-protected Word file is an OLE compound file holding an EncryptedPackage.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    (tmp_path / "locked.docx").write_bytes(ole + "EncryptedPackage".encode("utf-16-le"))
    (tmp_path / "old.docx").write_bytes(ole + b"WordDocument")
    (tmp_path / "corrupt.docx").write_bytes(b"PK\x03\x04 this is no zip at all")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("readme.txt", "a zip without any Word part")
    (tmp_path / "notword.docx").write_bytes(buffer.getvalue())
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        package.writestr("word/document.xml", b" " * (300 * 2**20))
    (tmp_path / "bomb.docx").write_bytes(bomb.getvalue())
    docs, skipped = load_paths([tmp_path])
    assert docs == []
    assert skipped == [
        Skipped(tmp_path / "bomb.docx", "Word file unpacks to 300 MB (more than 256 MB)"),
        Skipped(tmp_path / "corrupt.docx", "corrupt Word file (not a zip package)"),
        Skipped(tmp_path / "locked.docx",
                "password-protected Word file (save it without a password)"),
        Skipped(tmp_path / "notword.docx",
                "not a Word file (a zip package without word/document.xml)"),
        Skipped(tmp_path / "old.docx", "not a .docx file (an old binary .doc? save it as .docx)"),
    ]
    assert str(skipped[2]) == (f"skipped {tmp_path / 'locked.docx'}: password-protected Word "
                               "file (save it without a password)")


def test_a_question_about_a_table_cell_cites_its_row(tmp_path, settings, embedder) -> None:
    _fleet(tmp_path / "docs" / "fleet.docx")
    index = build_index([tmp_path / "docs"], tmp_path / "index", settings, embedder).index
    qa = QA(settings, index, embedder, ScriptedGenerator("Ana Reis is the captain in Lisbon [1]."))
    answer = qa.answer("Who is the captain in Lisbon?")
    assert not answer.refused
    [citation] = answer.citations
    assert (citation.source, citation.snippet, citation.page, citation.supported) == (
        "fleet.docx", "Lisbon | 14 | Ana Reis", None, True)
    doc = index.documents[citation.doc_id]
    assert doc.text[citation.start:citation.end] == "Lisbon | 14 | Ana Reis"
