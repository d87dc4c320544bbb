"""Error types and their exit codes.

``InputError`` (exit 2) is raised for anything the user typed or wrote wrong; it is raised
before anything is changed. ``OperationError`` (exit 1) is raised when an operation that was
allowed to start failed on the way. Messages are one line and never contain secrets.
"""

from __future__ import annotations


class KoralError(Exception):
    """Base class: ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self)


class InputError(KoralError):
    """Bad input: names the field and the allowed values. Nothing was changed."""

    exit_code = 2

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class OperationError(KoralError):
    """An operation failed after it started; state records what happened."""

    exit_code = 1


class LockedError(KoralError):
    """Another operation holds the cluster's lock."""

    exit_code = 1


class NotFoundError(InputError):
    """A named cluster or node does not exist (bad input: exit 2)."""
