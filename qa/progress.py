"""Progress reporting shared by long steps (model preparation, index builds)."""

from __future__ import annotations

import sys
from collections.abc import Callable

Reporter = Callable[[str, int, int], None]


def print_reporter(what: str, done: int, total: int) -> None:
    """Print a one-line progress bar to stderr, rewritten in place."""
    width = 30
    frac = done / total if total else 1.0
    bar = "#" * int(width * frac)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r{what} [{bar:<{width}}] {frac:4.0%}{end}")
    sys.stderr.flush()


def silent_reporter(what: str, done: int, total: int) -> None:
    """Report nothing."""
