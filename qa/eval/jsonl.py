"""Reading JSON Lines files with line-numbered errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def jsonl_rows(path: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; `error` names a line that is not
    JSON. OSError (a missing or unreadable file) is left to the caller."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: not JSON ({exc.msg})") from None
