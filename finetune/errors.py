"""Errors that reach the user as one line and an exit code, never as a traceback."""

from __future__ import annotations


class TuneproofError(Exception):
    """An error the command line prints as one line; ``exit_code`` is what the process returns.

    Exit codes (docs/architecture.md, "Contracts"): 1 the data or a gate failed what was asked,
    2 bad usage or unreadable input.
    """

    exit_code = 2


class UsageError(TuneproofError):
    """Bad command-line usage or a bad config value (exit 2)."""


class InputError(TuneproofError):
    """Input that cannot be read at all: missing file, not UTF-8, unknown format (exit 2)."""


class DataError(TuneproofError):
    """Input that was read but fails what was asked: invalid rows, a failed gate (exit 1)."""

    exit_code = 1


def where(path: object, line: int | None, field: str | None, problem: str) -> str:
    """Format an error location the way every command prints it: ``file:line: field: problem``."""
    parts = [str(path) if line is None else f"{path}:{line}"]
    if field:
        parts.append(field)
    parts.append(problem)
    return ": ".join(parts)


def first_line(err: BaseException) -> str:
    """The first non-blank line of ``err``'s message, or its class name when it has none.

    ``str(err).splitlines()[0]`` raises IndexError on an empty message; this never does.
    """
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__
