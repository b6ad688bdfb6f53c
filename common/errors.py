"""User-facing errors: the CLI prints their message in one line, without a traceback."""

from __future__ import annotations


class HarnessError(RuntimeError):
    """Something the user can fix (bad file, bad setting); the message says what and how."""


class DataError(HarnessError):
    """A data file is missing, malformed or has the wrong checksum."""


class ConfigError(HarnessError):
    """A setting or configuration file is invalid."""


class HarnessWarning(UserWarning):
    """Something the user should know that does not stop the work; the CLI prints it as one
    ``warning:`` line."""


# Exit codes of the command line (README, --help): a failed check (a disagreement, a
# submission check that fails) is 1; a run that LoadGen called INVALID is 3; an
# interrupted one is 128 + the signal (130 Ctrl-C, 143 SIGTERM).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INVALID = 3
