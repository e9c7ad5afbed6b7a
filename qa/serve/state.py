"""Runtime state of the server: the start-up index, background model loading and the models a
visitor may pick."""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from qa.answer.examples import cached_examples
from qa.answer.pipeline import QA, load_warm_generator
from qa.config import MODEL_NAMES, Settings, one_of
from qa.errors import IndexLoadError, IndexWriteError, QAError
from qa.generate.base import Generator
from qa.generate.models import GENERATORS, is_installed
from qa.index.embedding import Embedder
from qa.index.store import Index, build_index, load_index, recover, stale_reasons
from qa.progress import Reporter, print_reporter, silent_reporter

log = logging.getLogger("qa.serve")


def open_index(settings: Settings, embedder: Embedder,
               report: Reporter = silent_reporter) -> tuple[Index, str]:
    """The verified index of settings.corpus_dir, rebuilt when missing, stale or corrupt.

    Returns the index and a note saying whether (and why) it was rebuilt. When index_dir
    cannot be written, the rebuilt index goes to a temporary folder instead.
    """
    folder = settings.index_dir
    recover(folder)  # a build killed half-way leaves the old index moved aside: restore it
    reasons = stale_reasons(folder, [settings.corpus_dir], settings, embedder)
    if not reasons:
        try:
            return load_index(folder, settings), ""
        except IndexLoadError as exc:
            reasons = [str(exc)]
    note = f"Rebuilt the index from {settings.corpus_dir.name}/ because: {'; '.join(reasons)}"
    try:
        index = build_index([settings.corpus_dir], folder, settings, embedder, report).index
    except (OSError, IndexWriteError):
        folder = Path(tempfile.mkdtemp(prefix="qa-index-")) / "index"
        index = build_index([settings.corpus_dir], folder, settings, embedder, report).index
        note += f" (written to {folder}: {settings.index_dir} is read-only)"
    return index, note


def installed_models() -> list[str]:
    """Generator names whose packages are installed."""
    return [name for name in GENERATORS if is_installed(name)]


class LoadProgress:
    """A Reporter that remembers the latest step (for the status line) and prints it."""

    def __init__(self, echo: Reporter = print_reporter) -> None:
        self.text = ""
        self.echo = echo

    def __call__(self, what: str, done: int, total: int) -> None:
        self.text = f"{what} {done / total if total else 1.0:.0%}"
        self.echo(what, done, total)


class Models:
    """The app's pipeline and its generators: one per model name, loaded once and shared."""

    def __init__(self, qa: QA, progress: LoadProgress | None = None) -> None:
        self.qa = qa
        self.progress = progress
        self._lock = threading.Lock()
        self._generators: dict[str, Generator] = {}
        self._state = "loading model…"
        self.error = ""
        self._ready = threading.Event()
        # Example questions made from the documents once the model is ready (None: not yet).
        self.examples: list[str] | None = None if qa.settings.example_questions else []

    @property
    def state(self) -> str:
        """'loading model…' (with the step under way), 'ready' or 'failed to load: ...'."""
        if not self.ready and self.progress is not None and self.progress.text:
            return f"{self._state} {self.progress.text}"
        return self._state

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def load_in_background(self) -> threading.Thread:
        """Start loading the default generator; `state` says how it went."""
        thread = threading.Thread(target=self._load_default, name="qa-model-loader",
                                  daemon=True)
        thread.start()
        return thread

    def _load_default(self) -> None:
        try:
            self.qa.warm()  # loads it once (thread-safe), with the index's prompt prefix
            self._state = "ready"
        except QAError as exc:  # meant for the user: shown on the page as it is
            self.error = str(exc)
            self._state = f"failed to load: {self.error}"
        except Exception as exc:
            log.exception("loading the model failed")
            self.error = f"{type(exc).__name__} (the server log has the details)"
            self._state = f"failed to load: {self.error}"
        finally:
            self._ready.set()
        if self.examples is None and not self.error:
            try:
                self.examples = cached_examples(self.qa, self.qa.settings.cache_dir / "examples",
                                                self.qa.settings.example_questions)
            except Exception:
                log.exception("making example questions failed")
                self.examples = []

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the default model finished loading (or failed)."""
        return self._ready.wait(timeout)

    def loaded(self, name: str) -> bool:
        """Whether the named generator is loaded (so answering will not wait for it)."""
        if name == self.qa.settings.model:
            return self.ready and not self.error
        return name in self._generators

    def generator(self, name: str) -> Generator:
        """The named generator (the default one comes from the pipeline)."""
        if name == self.qa.settings.model:
            return self.qa.generator
        with self._lock:
            if name not in self._generators:
                self._generators[name] = load_warm_generator(self.qa.settings, name)
            return self._generators[name]

    def pipeline(self, model: str | None = None, index: Index | None = None) -> QA:
        """A QA over index (default: the app's) with the named model (default: the app's)."""
        base = self.qa
        if (not model or model == base.settings.model) and index is None:
            return base
        name = model or base.settings.model  # the app's own (maybe a path), or a packaged one
        name = name if name == base.settings.model else one_of("model", name, MODEL_NAMES)
        # An uploaded set that fits is read whole too, from its own kept prompt prefix (the
        # generator keeps a few side by side: qa.generate.base.KEPT_PREFIXES).
        settings = replace(base.settings, model=name)
        return QA(settings, index or base.index, base.embedder, self.generator(name))
