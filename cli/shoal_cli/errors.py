"""The one error type the CLI shows to people: a single line, exit code 2, no traceback."""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix (a path, a reference, a registry); its message is the whole output."""

    exit_code = 2
