"""First hardening checks: no file leaks through any route, no unpickling of planted files."""

from __future__ import annotations

import http.client
import pickle
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from qa.errors import IndexLoadError, IndexWriteError
from qa.index.store import build_index, load_index
from tests.conftest import ROOT
from tests.test_api import serve  # noqa: F401 - the fixture
from tests.test_app import started  # noqa: F401 - the fixture

SECRET_PATHS = [
    "/etc/passwd", "/file=/etc/passwd", "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=../../../../etc/passwd", "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/%252e%252e/%252e%252e/etc/passwd",
    "/gradio_api/file=%2Fetc%2Fpasswd", "/static/../../../../etc/passwd",
    "/index/manifest.json", "/gradio_api/file=index/manifest.json", "/.env",
    "/gradio_api/file=" + str(Path.home() / ".cache" / "qa"), "/widget/../../qa/config.py",
    "/gradio_api/file=" + str(ROOT / "qa" / "config.py"),
]


class TouchOnUnpickle:
    """A pickle payload: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _get(base: str, path: str) -> tuple[int, bytes]:
    """GET a raw path (no client-side normalisation of '..' or escapes)."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def test_no_route_serves_files_outside_the_app(serve) -> None:  # noqa: F811
    base, _, _ = serve(mount_ui=True)
    assert _get(base, "/api/health")[0] == 200  # the server is up and answering
    for path in SECRET_PATHS:
        status, body = _get(base, path)
        assert status in (400, 403, 404, 405), (path, status)
        assert b"root:x:0:0" not in body and b"class Settings" not in body, path
        assert b"format_version" not in body, path


def test_a_planted_pickle_in_the_index_is_never_unpickled(tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(ROOT / "index", index)
    marker = tmp_path / "unpickled"
    for name in ("dense.pkl", "bm25/params.pkl", "chunks.pkl"):
        (index / name).write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    loaded = load_index(index)
    assert loaded.manifest["counts"]["documents"] == 1
    assert not marker.exists()
    # The payload is live: unpickling it would have created the marker.
    pickle.loads((index / "dense.pkl").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("name", ["dense.faiss", "chunks.jsonl", "bm25/data.csc.index.npy"])
def test_a_pickle_swapped_in_for_an_index_file_fails_verification(tmp_path: Path,
                                                                  name: str) -> None:
    index = tmp_path / "index"
    shutil.copytree(ROOT / "index", index)
    marker = tmp_path / "unpickled"
    (index / name).write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    with pytest.raises(IndexLoadError, match=r"wrong size|sha256"):
        load_index(index)
    assert not marker.exists()


def test_a_full_disk_gives_a_clear_error_and_keeps_the_old_index(tmp_path: Path,
                                                                 settings, embedder) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out = disk / "index"
        old = build_index([ROOT / "corpus"], out, settings, embedder).index
        bigger = tmp_path / "bigger"
        shutil.copytree(ROOT / "corpus", bigger)
        (bigger / "notes.txt").write_text(" ".join(
            f"Note {i} records that shipment {i * 7} reached harbour {i % 13} on time."
            for i in range(600)))
        with pytest.raises(IndexWriteError, match=r"could not write the index to .*: No space "
                                                  r"left on device; the previous index is "
                                                  r"unchanged"):
            build_index([bigger], out, settings, embedder)
        assert load_index(out).manifest["build_id"] == old.manifest["build_id"]
        assert sorted(p.name for p in disk.iterdir()) == [".index.lock", "index"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize(("name", "body"), [
    ("evil.html", "<html><script>window.pwned = 1</script></html>"),
    ("evil.svg", "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"),
])
def test_uploads_are_never_served_back_as_html_or_svg(
        started, tmp_path: Path, name: str, body: str) -> None:  # noqa: F811 - the fixture
    client, _, _ = started("unused")
    base = client.src.rstrip("/")
    (tmp_path / name).write_text(body)
    with (tmp_path / name).open("rb") as fh:
        uploaded = httpx.post(f"{base}/gradio_api/upload", files={"files": (name, fh)},
                              timeout=30)
    assert uploaded.status_code == 200
    served = httpx.get(f"{base}/gradio_api/file={uploaded.json()[0]}", timeout=30)
    kind = served.headers.get("content-type", "")
    assert "html" not in kind and "svg" not in kind
    assert served.headers.get("content-disposition", "").startswith("attachment")
