"""Tests for qa.ingest.corpus: loading txt/md/html/pdf files and folders, with skips for bad
files."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter

from qa.files import sha256_file
from qa.ingest.corpus import SUPPORTED_SUFFIXES, Skipped, document_id, load_paths
from qa.types import Document

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS_FILE = REPO_ROOT / "corpus" / "sco-un-special-event-2018.txt"


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per page, with a byte-exact xref table."""
    n = len(pages)
    font = 3 + 2 * n
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        font: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        objects[3 + 2 * i] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R"
            f" /Resources << /Font << /F1 {font} 0 R >> >> >>"
        ).encode()
        objects[4 + 2 * i] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
    trailer = b"/Root 1 0 R"
    if title is not None:
        objects[font + 1] = f"<< /Title ({title}) >>".encode()
        trailer += b" /Info %d 0 R" % (font + 1)
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer, xref_at)
    return bytes(out)


def load_one(path: Path) -> Document:
    docs, skipped = load_paths([path])
    assert skipped == []
    assert len(docs) == 1
    return docs[0]


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")


def test_txt_title_is_first_nonempty_line_and_text_unchanged(tmp_path: Path) -> None:
    text = "\n  \n  My Title  \n\nBody  line   with   spaces.\n\tIndented.\n"
    doc = load_one(write(tmp_path / "a.txt", text))
    assert doc == Document(id=document_id(text), source="a.txt", title="My Title", text=text)


def test_txt_long_first_line_falls_back_to_stem(tmp_path: Path) -> None:
    assert load_one(write(tmp_path / "long-one.txt", "x" * 201 + "\nrest")).title == "long-one"
    assert load_one(write(tmp_path / "ok.txt", "y" * 200 + "\nrest")).title == "y" * 200


def test_newlines_normalised_and_bom_stripped(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path / "crlf.txt", b"\xef\xbb\xbfTitle\r\nline 2\rline 3\r\n\r\n"))
    assert doc.text == "Title\nline 2\nline 3\n\n"
    assert doc.title == "Title"
    assert doc.id == document_id("Title\nline 2\nline 3\n\n")


def test_markdown_titles(tmp_path: Path) -> None:
    md = "Intro line\n\n# Big Title #\n\nSome *text*.\n"
    doc = load_one(write(tmp_path / "guide.md", md))
    assert (doc.title, doc.text) == ("Big Title", md)
    assert load_one(write(tmp_path / "n.markdown", "\n## Sub heading\ntext\n")).title == (
        "Sub heading"
    )
    assert load_one(write(tmp_path / "plain.md", "Plain first line\n# Later\n")).title == "Later"
    assert load_one(write(tmp_path / "nohead.md", "#hashtag only\n")).title == "hashtag only"
    assert load_one(write(tmp_path / "big.md", "z" * 300 + "\n")).title == "big"


HTML = """<!DOCTYPE html>
<html><head><title> The  Page
 Title </title><style>p { color: red; }</style><script>var x = 1;</script></head>
<body><!-- a comment -->
<h1>Main heading</h1>
<p>First   paragraph
   spans lines.</p>
<div>Intro <b>bold</b> text<p>Nested para</p>tail</div>
<ul><li>One</li>
<li>Two &amp; three</li></ul>
<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>
<noscript>enable js</noscript><template><p>hidden</p></template>
<p>x<br>y</p>
</body></html>
"""


def test_html_text_blocks_and_title(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path / "page.html", HTML))
    assert doc.title == "The Page Title"
    assert doc.text == (
        "Main heading\n\nFirst paragraph spans lines.\n\nIntro bold text\n\nNested para\n\n"
        "tail\n\nOne\n\nTwo & three\n\na b\n\nc d\n\nx y"
    )
    assert doc.id == document_id(doc.text)


def test_html_title_fallbacks(tmp_path: Path) -> None:
    h1 = load_one(write(tmp_path / "h.htm", "<body><h1> Only\n H1 </h1><p>Body</p></body>"))
    assert (h1.title, h1.text) == ("Only H1", "Only H1\n\nBody")
    frag = load_one(write(tmp_path / "frag.html", "Just <b>bold</b> text &amp; more"))
    assert (frag.title, frag.text) == ("frag", "Just bold text & more")
    # An unclosed <head> nests <body> inside it with html.parser; the text must survive.
    odd = load_one(write(tmp_path / "odd.html", "<html><head><title>T</title><body><p>Kept"))
    assert (odd.title, odd.text) == ("T", "Kept")


def test_pdf_single_page(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path / "hello.pdf", make_pdf(["Hello PDF world"])))
    assert doc == Document(
        id=document_id("Hello PDF world"),
        source="hello.pdf",
        title="Hello PDF world",
        text="Hello PDF world",
        pages=((0, 15),),
    )


def test_pdf_pages_joined_and_metadata_title(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path / "two.pdf", make_pdf(["Page one", "Page two"], "Meta Title")))
    assert (doc.title, doc.text) == ("Meta Title", "Page one\n\nPage two")
    assert doc.pages == ((0, 8), (10, 18))
    assert [doc.page_at(i) for i in (0, 7, 8, 9, 10, 17)] == [1, 1, 1, 1, 2, 2]


def test_bad_pdfs_are_skipped(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Secret text"])))
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    write(tmp_path / "locked.pdf", buffer.getvalue())
    write(tmp_path / "blank.pdf", make_pdf([""]))
    write(tmp_path / "corrupt.pdf", b"%PDF-1.4\nthis is not really a pdf\n")
    docs, skipped = load_paths([tmp_path])
    assert docs == []
    assert [(s.path.name, s.reason) for s in skipped] == [
        ("blank.pdf", "no extractable text in PDF (blank pages, or text drawn as shapes)"),
        ("corrupt.pdf", "could not parse PDF (Stream has ended unexpectedly)"),
        ("locked.pdf", "encrypted PDF (password required)"),
    ]


def test_pdf_with_empty_user_password_loads(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(["Owner only"])))
    writer.encrypt("", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert load_one(write(tmp_path / "owner.pdf", buffer.getvalue())).text == "Owner only"


def test_folder_with_good_and_bad_files(tmp_path: Path) -> None:
    base = tmp_path / "docs"
    write(base / "good.txt", "Good text\n")
    write(base / "notes" / "readme.md", "# Readme\n\nBody\n")
    write(base / "page.html", "<title>Page</title><p>Hello html</p>")
    write(base / "doc.pdf", make_pdf(["Hello PDF world"]))
    write(base / "empty.txt", b"")
    write(base / "blank.md", b"  \n\t\r\n")
    write(base / "nul.txt", b"abc\x00def")
    write(base / "data.bin", b"\x00\x01\x02")
    write(base / "README", "no suffix")
    write(base / "latin1.txt", "caf\xe9".encode("latin-1"))
    write(base / "empty.html", "<html><script>only()</script></html>")
    write(base / "corrupt.pdf", b"%PDF-1.4\nthis is not really a pdf\n")
    os.symlink(base / "missing-target.txt", base / "x.txt")
    (base / "y.txt").mkdir()  # a folder, even with a document suffix, is walked, not read
    write(base / "y.txt" / "inner.md", "Inner\n")
    os.mkfifo(base / "pipe.txt")
    docs, skipped = load_paths([base])
    assert [d.source for d in docs] == [
        "doc.pdf",
        "good.txt",
        "notes/readme.md",
        "page.html",
        "y.txt/inner.md",
    ]
    assert [(d.title, d.text) for d in docs] == [
        ("Hello PDF world", "Hello PDF world"),
        ("Good text", "Good text\n"),
        ("Readme", "# Readme\n\nBody\n"),
        ("Page", "Hello html"),
        ("Inner", "Inner\n"),
    ]
    assert [(s.path, s.reason) for s in skipped] == [
        (base / "README", "unsupported file type (no suffix)"),
        (base / "blank.md", "no text (whitespace only)"),
        (base / "corrupt.pdf", "could not parse PDF (Stream has ended unexpectedly)"),
        (base / "data.bin", "unsupported file type '.bin'"),
        (base / "empty.html", "no text (whitespace only)"),
        (base / "empty.txt", "empty file"),
        (base / "latin1.txt", "not valid UTF-8 text"),
        (base / "nul.txt", "binary file (contains NUL bytes)"),
        (base / "pipe.txt", "unreadable: not a regular file"),
        (base / "x.txt", "unreadable: broken symlink"),
    ]
    assert str(skipped[3]) == f"skipped {base / 'data.bin'}: unsupported file type '.bin'"


def test_skipped_str() -> None:
    skip = Skipped(Path("docs/a.bin"), "unsupported file type '.bin'")
    assert str(skip) == "skipped docs/a.bin: unsupported file type '.bin'"


def test_sources_for_files_and_folders(tmp_path: Path) -> None:
    write(tmp_path / "top" / "a" / "b" / "deep.txt", "Deep\n")
    direct = write(tmp_path / "top" / "a" / "direct.md", "Direct\n")
    docs, skipped = load_paths([tmp_path / "top" / "a" / "b", str(direct)])
    assert skipped == []
    assert [d.source for d in docs] == ["deep.txt", "direct.md"]
    docs, _ = load_paths([tmp_path / "top"])
    assert [d.source for d in docs] == ["a/b/deep.txt", "a/direct.md"]


def test_order_is_sorted_by_source_whatever_the_input_order(tmp_path: Path) -> None:
    paths = [write(tmp_path / f"{name}.txt", f"{name} text\n") for name in ("c", "a", "b")]
    first, _ = load_paths(paths)
    second, _ = load_paths(list(reversed(paths)))
    assert [d.source for d in first] == ["a.txt", "b.txt", "c.txt"]
    assert first == second


def test_document_id_is_stable_and_content_based(tmp_path: Path) -> None:
    assert document_id("hello") == "2cf24dba5fb0a30e"
    assert document_id("hello") == hashlib.sha256(b"hello").hexdigest()[:16]
    assert document_id("hello!") != document_id("hello")
    one = load_one(write(tmp_path / "one" / "same.txt", "Same text\n"))
    two = load_one(write(tmp_path / "two" / "other.md", "Same text\r\n"))
    assert one.id == two.id == document_id("Same text\n")


def test_duplicates_kept_once(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "Same text\n")
    write(tmp_path / "a.txt", "Same text\n")
    write(tmp_path / "c.md", "Same text\r\n")
    write(tmp_path / "d.txt", "Different\n")
    docs, skipped = load_paths([tmp_path])
    assert [d.source for d in docs] == ["a.txt", "d.txt"]
    assert [str(s) for s in skipped] == [
        f"skipped {tmp_path / 'b.txt'}: duplicate of a.txt",
        f"skipped {tmp_path / 'c.md'}: duplicate of a.txt",
    ]


def test_hidden_files_and_folders_ignored(tmp_path: Path) -> None:
    write(tmp_path / "seen.txt", "Seen\n")
    write(tmp_path / ".hidden.txt", "Hidden\n")
    write(tmp_path / ".git" / "notes.txt", "In a hidden folder\n")
    write(tmp_path / "sub" / ".secret.md", "Hidden too\n")
    docs, skipped = load_paths([tmp_path])
    assert ([d.source for d in docs], skipped) == (["seen.txt"], [])


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "a.txt", "A\n")
    os.symlink(tmp_path / "docs", tmp_path / "docs" / "loop")
    docs, skipped = load_paths([tmp_path / "docs"])
    assert ([d.source for d in docs], skipped) == (["a.txt"], [])


def test_missing_path_and_direct_bad_file(tmp_path: Path) -> None:
    good = write(tmp_path / "good.txt", "Good\n")
    docs, skipped = load_paths([tmp_path / "nope", str(tmp_path / "nope.txt"), good])
    assert [d.source for d in docs] == ["good.txt"]
    assert skipped == [
        Skipped(tmp_path / "nope", "does not exist"),
        Skipped(tmp_path / "nope.txt", "does not exist"),
    ]
    broken = tmp_path / "broken.txt"
    os.symlink(tmp_path / "gone.txt", broken)
    assert load_paths([broken]) == ([], [Skipped(broken, "unreadable: broken symlink")])
    assert load_paths([]) == ([], [])


def test_sha256_file(tmp_path: Path) -> None:
    path = write(tmp_path / "f.txt", b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_default_corpus_file() -> None:
    doc = load_one(DEFAULT_CORPUS_FILE)
    expected = DEFAULT_CORPUS_FILE.read_bytes().decode("utf-8-sig")
    expected = expected.replace("\r\n", "\n").replace("\r", "\n")
    assert doc.source == "sco-un-special-event-2018.txt"
    assert doc.title == (
        "SCO Secretary-General: Combatting Global Challenges Calls for an Effective "
        "Collective Approach"
    )
    assert doc.text == expected
    assert doc.id == document_id(expected)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1).filter(lambda t: t.strip() and "\x00" not in t and t[0] != "\ufeff"))
def test_txt_round_trip_property(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        doc = load_one(write(Path(folder) / "t.txt", text.encode("utf-8")))
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert doc.text == expected
    assert doc.id == document_id(expected)
    assert doc.title == "t" or doc.title in expected
