"""Errors meant for the user, all under `QAError`.

The CLI prints such an error as one line and exits with `exit_status`; the HTTP API answers it
with `http_status` and the message; the chat app shows the message. Any other exception is a
bug: it surfaces with its traceback (the API logs it and answers a bare 500).
"""

from __future__ import annotations


class QAError(Exception):
    """An error whose message, one clear line, is meant for the user."""

    exit_status = 1
    http_status = 400


class SettingsError(QAError, ValueError):
    """A setting has an invalid value."""

    exit_status = 2


class UsageError(QAError):
    """The command line is wrong (unknown option, missing argument)."""

    exit_status = 2


class QuestionError(QAError, ValueError):
    """The question cannot be answered as given (empty, too long)."""

    exit_status = 2
    http_status = 422


class QuestionTooLong(QuestionError):
    """The question is longer than the settings allow."""

    http_status = 413


class UploadError(QAError, ValueError):
    """Uploaded files break a limit or hold no usable text; the message says which."""


class IndexLoadError(QAError, RuntimeError):
    """The index is missing, corrupt or unusable; the message says which and why."""

    http_status = 503


class IndexWriteError(QAError, RuntimeError):
    """A build could not be written (full disk, no permission); the old index is untouched."""

    http_status = 503


class ModelUnavailable(QAError, RuntimeError):
    """A model's packages are missing or its files fail verification."""

    http_status = 503


class GeneratorUnavailable(QAError, RuntimeError):
    """The generator server cannot be reached or keeps failing (refused, timed out, 429, 5xx)."""

    http_status = 503


class PromptTooLong(QAError, ValueError):
    """A prompt and its reply do not fit the model's context."""

    http_status = 422


class DataFileError(QAError, ValueError):
    """An evaluation file is missing or malformed; the message names the file and line."""

    exit_status = 2


class QuestionFileError(DataFileError):
    """The question file is missing or malformed; the message names the line."""


class SquadFormatError(DataFileError):
    """The file is not in the official SQuAD JSON layout."""


class BeirFormatError(DataFileError):
    """The BEIR folder is missing a file or has a malformed line."""
