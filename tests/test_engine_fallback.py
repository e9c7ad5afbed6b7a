"""Without llama-cpp-python and without a C compiler (issue 16): the app still answers, on
transformers-int8, and says so. The child process sees this environment's packages but
llama_cpp, and a PATH with nothing but Python on it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from qa.index.store import Index

ROOT = Path(__file__).resolve().parent.parent


def packages_without_llama_cpp(folder: Path) -> Path:
    """A folder of links to every installed package except llama-cpp-python's."""
    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir()
    for entry in site.iterdir():
        if entry.name.lower().startswith(("llama_cpp", "llama-cpp")) or entry.suffix == ".pth":
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.model
def test_without_llama_cpp_or_a_compiler_the_app_answers_on_transformers_int8(
        tmp_path: Path, corpus_index: Index) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    assert shutil.which("cc", path=str(bin_dir)) is None
    site = packages_without_llama_cpp(tmp_path / "site")
    env = {**os.environ, "PATH": str(bin_dir), "PYTHONPATH": f"{ROOT}{os.pathsep}{site}",
           "HF_HUB_OFFLINE": "1", "QA_MODEL": "qwen2.5-coder-0.5b"}
    env.pop("QA_BACKEND", None)
    script = ("import importlib.util, sys; assert importlib.util.find_spec('llama_cpp') is None;"
              " from qa.cli import main; sys.exit(main())")
    # -S: no site-packages but the folder above (and no .pth file of the real environment).
    done = subprocess.run(
        ["python", "-S", "-c", script, "ask", "--json", "--index",
         str(corpus_index.path),
         "Which organisation held the high-level event?"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout)
    assert answer["generator"]["backend"] == "transformers-int8", answer["generator"]
    assert not answer["refused"] and answer["citations"], answer
    assert ("qa: generator qwen2.5-coder-0.5b on transformers-int8 (int8 weights on PyTorch's "
            "fbgemm kernels): llama-cpp-python is not installed") in done.stderr
