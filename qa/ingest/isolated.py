"""Reading untrusted files in a child process with time and memory limits: a parser bomb (a
deflate bomb, a deep object tree, nested markup) costs the child, never the server.

`isolated_reader(seconds, memory_mb, max_chars)` is a reader for `load_paths`; the child is
`python -m qa.ingest.isolated PATH SOURCE MEMORY_MB MAX_CHARS`, answering one JSON line (no
pickle)."""

from __future__ import annotations

import json
import resource
import subprocess  # nosec B404: runs this module in a child, no shell
import sys
from dataclasses import asdict
from pathlib import Path

from qa.ingest.corpus import Reader, Skipped, load_file
from qa.types import Document


def too_long(chars: int, limit: int) -> str:
    """The skip reason of a document whose text would pass the session's limit."""
    return (f"its {chars:,} characters of text would pass the limit of {limit:,} per session; "
            "not indexed")


def out_of_memory(memory_mb: int) -> str:
    """The skip reason of a file whose reading ran out of its memory."""
    return f"needs more than {memory_mb} MB of memory to read; not indexed"


def isolated_reader(seconds: float, memory_mb: int, max_chars: int) -> Reader:
    """A file reader that parses each file in its own child process, stopped after `seconds`
    or when it needs `memory_mb` more memory than it starts with; either is that file's skip
    reason, as is
    text longer than max_chars (not even sent back)."""

    def read(path: Path, source: str) -> tuple[Document | None, Skipped | None]:
        command = [sys.executable, "-m", "qa.ingest.isolated", str(path), source,
                   str(memory_mb), str(max_chars)]
        try:
            done = subprocess.run(command, capture_output=True, timeout=seconds,  # nosec B603
                                  check=False)
        except subprocess.TimeoutExpired:  # the child is killed
            return None, Skipped(path, f"took longer than {seconds:g} s to read; not indexed")
        if done.returncode != 0:
            if b"MemoryError" in done.stderr or done.returncode < 0:
                return None, Skipped(path, out_of_memory(memory_mb))
            last = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            return None, Skipped(path, f"could not be read ({last[:200]})")
        reply = json.loads(done.stdout)
        doc = reply.get("document")
        skip = reply.get("skipped")
        return (Document(**{**doc, "pages": tuple(map(tuple, doc["pages"]))}) if doc else None,
                Skipped(path, skip["reason"], skip["partial"]) if skip else None)

    return read


def main(argv: list[str]) -> int:
    """The child: limit its memory, read one file, print what it made of it as JSON."""
    path, source, memory_mb, max_chars = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    # memory_mb more than the interpreter and its readers use once started (Linux's statm:
    # the address space in pages).
    pages = int(Path("/proc/self/statm").read_text().split()[0])
    limit = pages * resource.getpagesize() + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    doc, skip = load_file(path, source)
    if skip is not None and skip.reason.endswith("(MemoryError)"):  # a parser's, caught
        skip = Skipped(path, out_of_memory(memory_mb))
    if doc is not None and len(doc.text) > max_chars:
        skip = Skipped(path, too_long(len(doc.text), max_chars))
        doc = None
    json.dump({"document": asdict(doc) if doc else None,
               "skipped": {"reason": skip.reason, "partial": skip.partial} if skip else None},
              sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
