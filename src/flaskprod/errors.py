"""Errors a user can fix, and the exit codes the command line gives for them.

Every command turns a :class:`UserError` into one line on stderr and its exit code,
never a traceback. Anything else escaping a command is a bug in flaskprod.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: ``check`` found something at or above the fail level.
    FINDINGS = 1
    #: Bad arguments, a bad spec, a project that cannot be understood.
    USAGE = 2
    #: Something the machine lacks: a binary, a package, a free port, permissions.
    ENVIRONMENT = 3
    #: A service flaskprod started failed (did not become ready, crashed).
    SERVICE = 4
    #: A file would be overwritten or data lost without ``--force`` / ``--yes``.
    REFUSED = 5
    #: A backup or restore failed its verification.
    VERIFY = 6
    #: A deploy step failed on a host (the message names both); the release that was
    #: serving before keeps serving.
    DEPLOY = 7
    #: The deploy succeeded, but the checks run against the deployed site found errors.
    DEPLOYED_WITH_FINDINGS = 8


class UserError(Exception):
    """A problem the user can fix; ``str(error)`` is the one line shown."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class SpecError(UserError):
    """The deployment spec is invalid: the message names the file and key."""


class ProjectError(UserError):
    """The project cannot be understood (no Flask app, ambiguous app, import error)."""


class EnvironmentProblem(UserError):
    """The machine lacks something: a binary, a package, a free port."""

    exit_code = ExitCode.ENVIRONMENT


class ServiceFailed(UserError):
    """A service flaskprod started did not come up or died."""

    exit_code = ExitCode.SERVICE


class Refused(UserError):
    """The command would lose data or overwrite a hand-edited file."""

    exit_code = ExitCode.REFUSED


class VerificationFailed(UserError):
    exit_code = ExitCode.VERIFY


class DeployError(UserError):
    """A step of a deploy failed on a host; the message names the host and the step."""

    exit_code = ExitCode.DEPLOY
