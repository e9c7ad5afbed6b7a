"""Hugging Face Spaces packaging: front matter, requirements, and a fresh-venv start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import gradio
import pytest

from tests.conftest import ROOT
from tests.test_app import free_port


def _front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with Spaces front matter"
    pairs = (line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_front_matter_pins_the_installed_gradio() -> None:
    meta = _front_matter()
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    assert meta["app_file"] == "app.py"
    assert meta["python_version"] == "3.11"
    assert {"title", "emoji", "short_description", "license"} <= set(meta)


def test_requirements_agree_with_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["model-1-5b"] + extras["model-0-5b"]
    assert sorted(_requirements()) == sorted(wanted)
    assert all("==" in line for line in _requirements())


@pytest.mark.slow
def test_fresh_venv_installs_requirements_and_serves_the_app(tmp_path: Path) -> None:
    """Exactly what a Space does: pip install -r requirements.txt, then python app.py."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                              str(ROOT / "requirements.txt")], capture_output=True, text=True,
                             timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "QA_INDEX_DIR": str(tmp_path / "index"), "QA_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": ""}
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen([str(python), "app.py"], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        page = ""
        deadline = time.monotonic() + 300
        # First the start-up page (the index is rebuilt), then the chat UI.
        while time.monotonic() < deadline and app.poll() is None and "gradio" not in page:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    page = reply.read().decode().lower()
            except OSError:
                pass
            time.sleep(1)
        assert app.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
        assert "gradio" in page
    finally:
        app.terminate()
        app.wait(timeout=60)
    # The index was missing, so the app rebuilt it from corpus/ and said so.
    assert (tmp_path / "index" / "manifest.json").is_file()

