"""The exception a file reader raises for an expected problem (its message is the reason)."""

from __future__ import annotations


class SkipFile(Exception):
    """A file that cannot be read, for a reason the user can act on (the message)."""
