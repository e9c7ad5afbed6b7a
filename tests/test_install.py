"""The package as a user installs it: `pip install .` (not editable) in a fresh venv, then
`qa serve --corpus DIR` from another folder answers POST /api/ask."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED
from tests.test_app import free_port

CORPUS = SHARED / "corpus" if (SHARED / "corpus").is_dir() else ROOT / "corpus"


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return dict(json.loads(reply.read()))


def _get_list(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return list(json.loads(reply.read()))


@pytest.mark.slow
def test_installed_package_serves_a_corpus_and_answers(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    source = tmp_path / "source"  # a copy, so that no build output lands in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", "build", "test-artifacts", ".*cache"))
    for step in (["torch==2.13.0"], [f"{source}[model-0-5b]"]):
        install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *step],
                                 capture_output=True, text=True, timeout=1800)
        assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "work"  # not the checkout: `qa` must come from site-packages
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import qa; print(qa.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True, timeout=120)
    assert "site-packages" in where.stdout
    port = free_port()
    env = {**os.environ, "QA_MODEL": "qwen2.5-coder-0.5b", "PYTHONPATH": ""}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(venv / "bin" / "qa"), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--corpus", str(CORPUS), "--index", str(tmp_path / "index")],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        health: dict[str, object] = {}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and server.poll() is None and health.get(
                "status") != "ok":
            with contextlib.suppress(OSError):  # not listening yet
                health = _get(f"{base}/api/health")
            time.sleep(1)
        assert health.get("status") == "ok", (tmp_path / "serve.log").read_text()[-3000:]
        request = urllib.request.Request(
            f"{base}/api/ask", data=json.dumps({"question": "Where was the event held?"}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as reply:
            assert reply.status == 200
            answer = json.loads(reply.read())
        documents = _get_list(f"{base}/api/documents")
        with urllib.request.urlopen(f"{base}/", timeout=30) as reply:
            page = reply.read().decode().lower()
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert answer["question"] == "Where was the event held?"
    assert answer["model"] == "qwen2.5-coder-0.5b"
    files = {p.name for p in CORPUS.iterdir()}
    assert {d["source"] for d in documents} == files  # the corpus asked for, all of it
    assert answer["hits"] and {h["source"] for h in answer["hits"]} <= files
    assert "gradio" in page  # the packaged chat UI is mounted at /
    assert (tmp_path / "index" / "manifest.json").is_file()
