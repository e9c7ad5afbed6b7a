"""Static security checks of our own code."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

BANNED = re.compile(r"import pickle|pickle\.loads?\(|allow_pickle=True|(?<![.\w])eval\(|"
                    r"(?<![.\w])exec\(|trust_remote_code=True")


def test_bandit_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "qa", "app.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_pickle_eval_or_remote_code_in_the_package() -> None:
    for path in [*ROOT.joinpath("qa").rglob("*.py"), ROOT / "app.py"]:
        found = BANNED.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path.relative_to(ROOT)} uses {found.group()}"
