"""Replicas over one index folder: each app process polls the folder's manifest and, when
another process has written a new build there (a new build id), loads and verifies it in the
background and swaps it in with `QA.swap_index`; answers already running finish on the old
index. A folder caught half-way through a swap fails verification and is read again at the
next poll."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from qa.answer.pipeline import QA
from qa.errors import IndexLoadError
from qa.index.store import load_index, read_manifest

log = logging.getLogger("qa.serve")


class IndexWatcher:
    """Swaps new builds of folder into qa, checking every `seconds`."""

    def __init__(self, qa: QA, folder: Path, seconds: float) -> None:
        self.qa = qa
        self.folder = Path(folder)
        self.seconds = seconds
        self._stop = threading.Event()
        self._failed = ""  # the build id that last failed to load (logged once)
        self.thread = threading.Thread(target=self._run, name="qa-index-watcher", daemon=True)

    def start(self) -> IndexWatcher:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.check()
            except Exception:  # a bug here must not end the watching
                log.exception("checking %s for a new index build failed", self.folder)

    def check(self) -> bool:
        """Swap in the folder's build when it is new and verifies; whether it did."""
        try:
            build_id = str(read_manifest(self.folder).get("build_id", ""))
        except IndexLoadError:
            return False  # being swapped, or gone: the index in use stays
        if not build_id or build_id == self.qa.index.version:
            return False
        try:
            index = load_index(self.folder, self.qa.settings)
        except IndexLoadError as exc:
            if build_id != self._failed:
                log.warning("new index build %s not loaded (retrying): %s", build_id, exc)
                self._failed = build_id
            return False
        old = self.qa.index.version
        self.qa.swap_index(index)
        log.info("index %s: swapped build %s for %s", self.folder, old, index.version)
        return True
