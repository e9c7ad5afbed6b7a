"""Shared fixtures: offline mode, the real embedder, a fresh index of the default corpus."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from qa.answer.pipeline import QA
from qa.config import Settings
from qa.index.embedding import Embedder
from qa.index.store import Index, build_index

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "eval" / "seed_dev.jsonl"
ARTICLE = ROOT / "corpus" / "sco-un-special-event-2018.txt"


# Fixtures that load a real generator model (minutes on 2 cores, GBs of memory) or drive
# Chromium; their tests get the `model` or `browser` marker, which `make test-fast` leaves out.
MODEL_FIXTURES = {"small", "default_qa", "default_generator", "model"}
BROWSER_FIXTURES = {"browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
    # A test that starts its own copy of the default model runs before the session's own
    # copy (default_qa) is loaded: both at once may not fit.
    items.sort(key=lambda item: item.get_closest_marker("first") is None)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest):
    """No QA_* variable of the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("QA_") and key != "QA_CACHE_DIR":
            monkeypatch.delenv(key)
    # The app's example questions cost generations once the model is ready, which would take
    # scripted replies meant for the test; the tests of the examples turn them on.
    monkeypatch.setenv("QA_EXAMPLE_QUESTIONS", "0")
    if request.node.get_closest_marker("model") is None:
        # Scripted replies cite the retrieved passages by rank; tests/test_whole_corpus.py
        # covers the default corpus read whole, and tests with a real model keep the default.
        monkeypatch.setenv("QA_WHOLE_CORPUS_TOKENS", "0")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, settings: Settings,
                 embedder: Embedder) -> Index:
    """A fresh index of corpus/ built in a temporary folder."""
    out = tmp_path_factory.mktemp("index") / "index"
    return build_index([ROOT / "corpus"], out, settings, embedder).index


@pytest.fixture(scope="session")
def default_qa(settings: Settings, corpus_index: Index, embedder: Embedder) -> QA:
    """The default model over the default corpus, loaded once for every test that asks."""
    return QA(settings, corpus_index, embedder)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "corpus"
    shutil.copytree(ROOT / "corpus", folder)
    yield folder
