"""Evaluated prompt prefixes kept on disk between starts (llama.cpp's context state).

A file holds the state after one prefix, named by the hash of what it came from: the weights'
sha256, the engine build, the context size and the prefix's token ids. It is written to a
temporary file and renamed (a crash leaves no half file under the name) and carries the sha256
of its payload, checked before use: a file that fails the check is deleted and the prefix
evaluated again. Only the newest `KEEP_FILES` files stay.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

MAGIC = b"qa-prefix-state 1\n"
KEEP_FILES = 8  # about 40 MB each for the default model's instructions and article
log = logging.getLogger(__name__)


class PrefixStore:
    """States by prefix in one folder, for one model and engine build (`identity`)."""

    def __init__(self, folder: Path, identity: str) -> None:
        self.folder = folder
        self.identity = identity

    def path(self, ids: list[int]) -> Path:
        key = hashlib.sha256(f"{self.identity}\n{','.join(map(str, ids))}".encode())
        return self.folder / f"{key.hexdigest()[:32]}.state"

    def load(self, ids: list[int]) -> bytes | None:
        """The state saved for ids, or None (none saved, unreadable, or failing its check)."""
        path = self.path(ids)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        head = len(MAGIC) + 65  # the magic line, then the payload's hex sha256 and a newline
        payload = data[head:]
        if (data[:len(MAGIC)] != MAGIC
                or data[len(MAGIC):head - 1].decode("ascii", "replace")
                != hashlib.sha256(payload).hexdigest()):
            log.warning("prefix state %s failed its check; evaluating the prefix again", path)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: kept longest
        return payload

    def save(self, ids: list[int], state: bytes) -> None:
        """Write the state for ids (atomically); a failure to write is logged, not raised."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256(state).hexdigest().encode()
            fd, partial = tempfile.mkstemp(dir=self.folder, prefix=".partial-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(MAGIC + digest + b"\n")
                    out.write(state)
                os.replace(partial, self.path(ids))
            finally:
                Path(partial).unlink(missing_ok=True)
            files = sorted(self.folder.glob("*.state"), key=lambda p: p.stat().st_mtime,
                           reverse=True)
            for old in files[KEEP_FILES:]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not keep a prompt prefix in %s: %s", self.folder, exc)
