"""Hostile uploads, generated here: each file read in a child process with time and memory
limits gives one line naming it, the others still index, the server's memory stays put."""

from __future__ import annotations

import gc
import io
import os
import zlib
from pathlib import Path

import psutil
import pytest
from pypdf import PdfWriter
from pypdf.generic import NameObject, NumberObject, StreamObject

from qa.config import Settings
from qa.ingest.isolated import isolated_reader, too_long
from qa.serve.uploads import UploadStore
from tests.test_uploads import notes

ZOO = ("Zoo notes\n\nThe zebra named Oswald lives in the Lisbon zoo since 2019. He eats hay "
       "and carrots.\n")


def deflate_bomb(path: Path, megabytes: int = 256) -> Path:
    """A one-page PDF whose content stream inflates from ~256 KB to `megabytes` MB."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    packer = zlib.compressobj(9)
    zeros = b"0" * (1 << 20)
    data = b"".join([*(packer.compress(zeros) for _ in range(megabytes)), packer.flush()])
    stream = StreamObject()
    stream._data = data
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    stream[NameObject("/Length")] = NumberObject(len(data))
    page[NameObject("/Contents")] = writer._add_object(stream)
    with path.open("wb") as out:
        writer.write(out)
    return path


def nested_pdf(path: Path, depth: int = 100_000) -> Path:
    """A PDF whose page holds an array nested `depth` deep, with a correct xref table."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Annots " + b"[" * depth + b"]" * depth + b" >>",
               b"<< /Length 0 >>\nstream\n\nendstream"]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % o for o in offsets))
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    path.write_bytes(out.getvalue())
    return path


def empty_pages(path: Path, pages: int = 5000) -> Path:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    with path.open("wb") as out:
        writer.write(out)
    return path


def hostile_files(folder: Path) -> list[Path]:
    """The issue's hostile files, and a good one (zoo.txt)."""
    (folder / "nested.html").write_text(
        "<html><body>" + "<div><span>" * 50_000 + "&amp;amp;&#x26;amp;&#38;#38;" * 300 +
        "Deep inside." + "</span></div>" * 50_000 + "</body></html>", encoding="utf-8")
    (folder / "one-line.txt").write_text("pepper " * (9_900_000 // 7), encoding="utf-8")
    (folder / "binary.txt").write_bytes(os.urandom(200_000))
    (folder / "renamed.txt").write_text(ZOO.replace("Oswald", "Pedro"), encoding="utf-8")
    (folder / "zoo.txt").write_text(ZOO, encoding="utf-8")
    return [deflate_bomb(folder / "bomb.pdf"), nested_pdf(folder / "nested.pdf"),
            empty_pages(folder / "empty.pdf"), folder / "nested.html",
            folder / "one-line.txt", folder / "binary.txt", folder / "renamed.txt",
            folder / "zoo.txt"]


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def test_hostile_files_each_give_one_line_and_the_others_index(embedder, tmp_path: Path) -> None:
    files = hostile_files(tmp_path)
    store = UploadStore(Settings.from_env(max_upload_files=10, max_upload_chars=1_000_000),
                        embedder)
    try:
        # Warm up what every upload uses (the embedder on full batches, the indexing worker)
        # before measuring.
        store.release(store.index([notes(tmp_path, "warm.txt", 800)]))
        before = rss_mb()
        renamed = files[6]
        # The file is renamed after the visitor gave it, before the server copies it.
        renamed.rename(renamed.with_name("moved.txt"))
        uploads = store.index([*files[:6], renamed, files[7]])
        lines = dict(line.split(": ", 1) for line in uploads.skipped)
        texts = [c.text for c in uploads.index.chunks]
        store.release(uploads)
        del uploads
        after = rss_mb()
    finally:
        store.close()
    # Deep markup is read (each entity decoded once), and the good file indexed.
    assert any("The zebra named Oswald lives in the Lisbon zoo" in t for t in texts)
    assert any("&amp;&amp;&#38;&amp;&amp;&#38;" in t for t in texts)
    assert not any("&amp;amp;" in t or "&#x26;" in t for t in texts)
    assert sorted(lines) == ["binary.txt", "bomb.pdf", "empty.pdf", "nested.pdf",
                             "one-line.txt", "renamed.txt"]
    assert all("\n" not in reason for reason in lines.values())
    assert lines["binary.txt"] == "binary file (contains NUL bytes)"
    assert lines["empty.pdf"] == ("no extractable text in PDF (blank pages, or text drawn as "
                                  "shapes)")
    assert lines["renamed.txt"] == ("could not be read during the upload (No such file or "
                                    "directory); not indexed")
    assert lines["one-line.txt"] == too_long(len(files[4].read_text()), 1_000_000)
    assert lines["bomb.pdf"] == lines["empty.pdf"]  # pypdf stops inflating at its own cap
    assert lines["nested.pdf"] == "could not parse PDF (Error reading PDF file.)"
    assert after - before < 50, f"the server grew by {after - before:.0f} MB"


@pytest.mark.parametrize(("seconds", "memory_mb", "reason"), [
    (0.01, 1024, "took longer than 0.01 s to read; not indexed"),
    (60, 20, "needs more than 20 MB of memory to read; not indexed"),
])
def test_the_child_is_stopped_at_its_limits(tmp_path: Path, seconds: float, memory_mb: int,
                                            reason: str) -> None:
    path = tmp_path / "one-line.txt"  # 10 MB of text: its bytes, then a string of them
    path.write_text("pepper " * (9_900_000 // 7), encoding="utf-8")
    doc, skip = isolated_reader(seconds, memory_mb, 10**8)(path, "one-line.txt")
    assert doc is None and skip is not None and skip.reason == reason
    assert not psutil.Process().children()  # the child was stopped and reaped


def test_a_file_read_in_the_child_equals_one_read_here(tmp_path: Path) -> None:
    from qa.ingest.corpus import load_file

    path = tmp_path / "zoo.txt"
    path.write_text(ZOO, encoding="utf-8")
    assert isolated_reader(60, 1024, 1000)(path, "zoo.txt") == load_file(path, "zoo.txt")
