"""Errors meant for people.

An ``EtlError`` carries a one-line message that names the file, row, field or
server at fault and what to do. The CLI prints it without a traceback and exits
non-zero; anything else is a bug and keeps its traceback.
"""


class EtlError(Exception):
    """A problem with the input or the environment, explained in one line."""

    exit_code = 2


class ConfigError(EtlError):
    """A setting or argument is wrong."""


class SourceError(EtlError):
    """Input data cannot be read as the pipeline expects (missing file, column...)."""


class DatabaseError(EtlError):
    """The warehouse cannot be reached or refused a statement."""
