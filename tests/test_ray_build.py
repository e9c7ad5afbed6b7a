"""`qa index build --engine ray`: the same index as a local build, on a local Ray cluster; a
worker killed mid-build; the message when Ray is not installed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qa.cli import main
from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.engine import LocalEngine
from qa.index.store import Index, build_index, load_index
from qa.retrieve.hybrid import Retriever
from tests.conftest import ROOT
from tests.synthetic import TOPICS, write_synthetic

# Imported at collection, not under capsys: Ray's log handler keeps the stream it finds.
with contextlib.suppress(ImportError):
    import ray  # noqa: F401

TIMING = {"created_at"}  # the manifest fields that say when, not what
QUERIES = [f"yearly survey of {topic}" for topic in TOPICS[:8]] + [
    "Which countries became members?", "special event of the United Nations"]


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is missing
    assert main(["index", "build", str(ROOT / "corpus"), "--out", str(tmp_path / "i"),
                 "--engine", "ray"]) == 2
    err = capsys.readouterr().err
    assert err == ("qa: error: --engine ray needs Ray: pip install '.[ray]' (or pip install "
                   "'ray[data]==2.60.0')\n")
    assert not (tmp_path / "i").exists()
    assert main(["index", "build", "--address", "auto", "--out", str(tmp_path / "i")]) == 2
    assert capsys.readouterr().err == "qa: error: --address needs --engine ray\n"


def test_an_unreachable_head_is_one_line(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from tests.test_app import free_port

    port = free_port()  # nothing listens there
    assert main(["index", "build", str(ROOT / "corpus"), "--out", str(tmp_path / "i"),
                 "--engine", "ray", "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qa: error: cannot reach the Ray cluster at 127.0.0.1:{port}: ")
    assert err.count("\n") == 1 and not (tmp_path / "i").exists()
    assert main(["index", "build", "--engine", "ray", "--address", "nowhere"]) == 2
    assert capsys.readouterr().err == ("qa: error: --address must be 'auto' or a head's "
                                       "host:port, got 'nowhere'\n")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs with a small object store, for this module."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=500 * 2**20, include_dashboard=False,
             log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def bm25_results(index: Index, embedder: Embedder) -> list[list[tuple[str, float]]]:
    retriever = Retriever(index, embedder, Settings())
    return [[(h.chunk.id, h.bm25_score) for h in retriever.search(q, 5, mode="bm25")]
            for q in QUERIES]


def test_a_ray_build_equals_the_local_build(cluster: None, tmp_path: Path, settings: Settings,
                                            embedder: Embedder) -> None:
    from qa.index.ray_engine import RayEngine

    synthetic = tmp_path / "synthetic"
    write_synthetic(synthetic, documents=12, sentences=40)
    paths = [ROOT / "corpus", synthetic]
    local = build_index(paths, tmp_path / "local" / "index", settings, embedder).index
    result = build_index(paths, tmp_path / "ray" / "index", settings, embedder,
                         engine=RayEngine(settings))
    remote = result.index
    assert result.encoded == len(local.chunks) > 100 and result.reused == 0
    assert [c.id for c in remote.chunks] == [c.id for c in local.chunks]
    assert remote.chunks == local.chunks and remote.documents == local.documents
    assert np.abs(remote.vectors - local.vectors).max() <= 1e-5
    assert bm25_results(remote, embedder) == bm25_results(local, embedder)
    assert bm25_results(local, embedder)[0]  # the queries find something
    differ = {k for k in local.manifest.keys() | remote.manifest.keys()
              if local.manifest.get(k) != remote.manifest.get(k)}
    assert differ <= TIMING, {k: (local.manifest.get(k), remote.manifest.get(k)) for k in differ}
    # Incremental: a second Ray build of the same folder embeds nothing again.
    (synthetic / "doc000.md").write_text("# A new first note\n\nOnly this file changed.\n")
    again = build_index(paths, tmp_path / "ray" / "index", settings, embedder,
                        engine=RayEngine(settings))
    assert 0 < again.encoded <= 2 and again.reused == len(again.index.chunks) - again.encoded


def encoder_workers(driver: int) -> list[int]:
    """Process ids of the Ray actors that embed for the build run by driver (its local
    cluster's processes descend from it; their process title names the class)."""
    import psutil

    found = []
    for proc in psutil.Process(driver).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if cmdline.startswith("ray::") and "_Encoder" in cmdline:
            found.append(proc.pid)
    return found


@pytest.mark.slow  # a Ray cluster of its own and ~1,000 chunks to embed: about 2 minutes
def test_a_worker_killed_mid_build_leaves_a_complete_or_the_old_index(
        tmp_path: Path, settings: Settings, embedder: Embedder) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "store" / "index"
    old = build_index([ROOT / "corpus"], out, settings, embedder).index
    synthetic = tmp_path / "synthetic"
    write_synthetic(synthetic, documents=60, sentences=60, seed=3)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    build = subprocess.Popen([sys.executable, "-m", "qa.cli", "index", "build",
                              str(ROOT / "corpus"), str(synthetic), "--out", str(out),
                              "--engine", "ray"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        workers: list[int] = []
        while not workers and build.poll() is None and time.monotonic() < deadline:
            workers = encoder_workers(build.pid)
            time.sleep(0.2)
        assert workers, "no embedding worker appeared"
        time.sleep(2.0)  # a batch or two under way
        assert build.poll() is None, "the build ended before a worker could be killed"
        os.kill(workers[0], signal.SIGKILL)
        stdout, stderr = build.communicate(timeout=600)
    finally:
        if build.poll() is None:
            build.kill()
    print(f"killed Ray worker {workers[0]}: exit status {build.returncode}")
    if build.returncode == 0:  # Ray restarted the actor and retried its batches
        index = load_index(out)  # every file's size and sha256 verified
        documents, _ = LocalEngine().load([ROOT / "corpus", synthetic])
        chunks = [c for per in LocalEngine().chunk(documents, embedder, settings) for c in per]
        assert [c.id for c in index.chunks] == [c.id for c in chunks]
        rows = list(range(0, len(chunks), 97))
        fresh = embedder.encode([chunks[r].text for r in rows])
        assert np.abs(index.vectors[rows] - fresh).max() <= 1e-5
        assert f"indexed {len(documents)} documents, {len(chunks)} chunks" in stdout
    else:  # a clear error, and the old index as it was
        lines = [line for line in stderr.splitlines() if line.startswith("qa: error:")]
        assert len(lines) == 1 and "the previous index is unchanged" in lines[0], stderr[-2000:]
        assert "Traceback" not in stderr
        assert load_index(out).version == old.version
    leftovers = sorted(p.name for p in out.parent.iterdir() if p.name != ".index.lock")
    assert leftovers == ["index"]
    assert json.loads((out / "manifest.json").read_text())["build_id"]
