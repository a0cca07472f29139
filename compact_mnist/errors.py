"""One kind of error for everything a user can get wrong, and the wrapper that reports it.

Scripts raise `UserError` for bad input (missing data, a damaged file, a wrong checkpoint).
`run_cli` turns it into a single line on stderr and exit code 2, instead of a traceback, and
Ctrl-C into exit code 130.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix; the message says how."""


class UsageError(UserError):
    """Flags that a command refuses, raised instead of exiting where a script asks first (ArgumentParser with
    `exit_on_error=False`); the message is the one the command would print."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's `main`: `UserError` -> one line and exit 2; Ctrl-C -> exit 130."""
    try:
        code = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # the output went into a pipe that closed early, e.g. `| head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code or 0)
