"""Static security checks: bandit on our code, no pickle/eval/remote code, and an offline
stand-in for pip-audit (installed and pinned versions at or above their security fixes)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

import pytest
from packaging.version import Version

from tests.conftest import ROOT

BANNED = re.compile(r"import pickle|pickle\.loads?\(|allow_pickle=True|(?<![.\w])eval\(|"
                    r"(?<![.\w])exec\(|trust_remote_code=True")

# pip-audit needs the vulnerability database online, which no machine here can reach. Instead:
# the first version that fixed each package's known high-severity advisories (the CVE ids say
# which). Update the table when a new advisory matters; gradio's floor is issue 7's (>= 6.16).
FIXED_IN: dict[str, tuple[str, tuple[str, ...]]] = {
    "gradio": ("6.16.0", ("CVE-2023-51449", "CVE-2024-1561", "CVE-2024-47167")),
    "starlette": ("0.49.1", ("CVE-2024-47874", "CVE-2025-54121", "CVE-2025-62727")),
    "fastapi": ("0.109.1", ("CVE-2024-24762",)),
    "python-multipart": ("0.0.18", ("CVE-2024-24762", "CVE-2024-53981")),
    "uvicorn": ("0.11.7", ("CVE-2020-7694", "CVE-2020-7695")),
    "h11": ("0.16.0", ("CVE-2025-43859",)),
    "jinja2": ("3.1.6", ("CVE-2024-22195", "CVE-2024-34064", "CVE-2024-56201",
                         "CVE-2024-56326", "CVE-2025-27516")),
    "pillow": ("10.3.0", ("CVE-2023-50447", "CVE-2024-28219")),
    "requests": ("2.32.4", ("CVE-2023-32681", "CVE-2024-35195", "CVE-2024-47081")),
    "urllib3": ("2.5.0", ("CVE-2023-43804", "CVE-2023-45803", "CVE-2024-37891",
                          "CVE-2025-50181", "CVE-2025-50182")),
    "aiohttp": ("3.10.11", ("CVE-2024-23334", "CVE-2024-52304")),
    "torch": ("2.6.0", ("CVE-2025-32434",)),
    "transformers": ("4.38.0", ("CVE-2024-3568",)),
    "pydantic": ("2.4.0", ("CVE-2024-3772",)),
    "idna": ("3.7", ("CVE-2024-3651",)),
    "certifi": ("2024.7.4", ("CVE-2024-39689",)),
    "setuptools": ("78.1.1", ("CVE-2024-6345", "CVE-2025-47273")),
}


def _pins() -> dict[str, str]:
    """name -> version of every `name==version` line of requirements.txt (names normalised)."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version.strip()
    return pins


def test_bandit_finds_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "bandit", "-q", "-r", "qa", "app.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_pickle_eval_or_remote_code_in_the_package() -> None:
    for path in [*ROOT.joinpath("qa").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py"),
                 ROOT / "app.py"]:
        found = BANNED.search(path.read_text(encoding="utf-8"))
        assert found is None, f"{path.relative_to(ROOT)} uses {found.group()}"


def test_the_scan_catches_what_it_bans() -> None:
    for code in ("import pickle", "pickle.load(fh)", "np.load(p, allow_pickle=True)",
                 "eval('1')", "x = exec(code)", "from_pretrained(p, trust_remote_code=True)"):
        assert BANNED.search(code), code
    for code in ("model.eval()", "_eval(args)", "literal_eval('1')", "self.exec_(x)"):
        assert BANNED.search(code) is None, code


@pytest.mark.parametrize("package", sorted(FIXED_IN))
def test_installed_and_pinned_versions_have_the_security_fixes(package: str) -> None:
    floor, advisories = FIXED_IN[package]
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        pytest.skip(f"{package} is not installed here")
    assert Version(installed) >= Version(floor), \
        f"{package} {installed} predates the fix of {', '.join(advisories)} ({floor})"
    pinned = _pins().get(package)
    if pinned is not None:  # a direct dependency: its pin must carry the fix too
        assert Version(pinned) >= Version(floor), f"requirements.txt pins {package}=={pinned}"


def test_the_direct_dependencies_with_advisories_are_pinned() -> None:
    assert {"gradio", "fastapi", "uvicorn", "torch", "transformers", "pydantic"} <= set(_pins())
