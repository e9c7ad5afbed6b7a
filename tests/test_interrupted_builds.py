"""An index build killed (SIGKILL) at random moments leaves the old or the new index."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import build_index, load_index, recover
from tests.conftest import ROOT

KILLS = 30
CHILD = r"""
import sys
from pathlib import Path
from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import build_index

out, first, second = map(Path, sys.argv[1:4])
settings, embedder = Settings.from_env(), Embedder()
embedder.model  # load before saying ready, so the kill lands in a build
print("ready", flush=True)
for i in range(10_000):
    build_index([first if i % 2 else second], out, settings, embedder)
"""


@pytest.mark.slow  # 30 child processes, each loading torch: about 3 minutes
def test_killed_builds_leave_a_loadable_old_or_new_index(tmp_path: Path, settings: Settings,
                                                         embedder: Embedder) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(ROOT / "corpus", first)
    shutil.copytree(ROOT / "corpus", second)
    (second / "extra.md").write_text("# Extra\n\nA second document about harbour cranes.\n")
    out = tmp_path / "store" / "index"
    expected = {frozenset(build_index([folder], out, settings, embedder).index.documents)
                for folder in (first, second)}
    assert len(expected) == 2
    rng = random.Random(20261128)
    for kill in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(first),
                                  str(second)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 2.0))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        recover(out)
        index = load_index(out)  # verifies every file's size and sha256
        assert frozenset(index.documents) in expected, f"kill {kill}: a mixed index"
        leftovers = sorted(p.name for p in out.parent.iterdir() if p.name != ".index.lock")
        assert leftovers == ["index"], f"kill {kill}: {leftovers}"
