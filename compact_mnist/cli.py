"""The command line of every script: the parser's rules, the value checks, and one kind of error for everything a
user can get wrong. A check is an argparse `type`, which argparse reports as one line naming the flag; a script
raises `UserError` for bad input (missing data, a damaged file), which `run_cli` prints as one line, exit code 2."""

from __future__ import annotations

import argparse
import math
import operator
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn


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


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, as the code has it: " (default: V)" after the help of a flag whose default
    is a number or a word and whose help does not already say what its default is (a path, a list, or a value with
    a reason given in words)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        shown = isinstance(action.default, int | float | str) and not isinstance(action.default, bool)
        if not shown or "default" in (action.help or "") or action.default == argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with this project's three rules: no abbreviated flags (`--mod` is no `--model`), each
    flag's default shown in --help from the code (`DefaultsFormatter`), and a usage error is one line naming the
    flag and pointing at --help, exit code 2 (argparse's own prints its usage block first). With
    `exit_on_error=False` every usage error is a `UsageError` instead, for a script that checks another command's
    flags before running it."""

    def __init__(self, description: str | None = None, exit_on_error: bool = True) -> None:
        super().__init__(
            description=description, allow_abbrev=False, formatter_class=DefaultsFormatter, exit_on_error=exit_on_error
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        try:
            return super().parse_known_args(args, namespace)
        except argparse.ArgumentError as error:  # raised, not reported, only under exit_on_error=False
            raise UsageError(str(error)) from None

    def error(self, message: str) -> NoReturn:
        if not self.exit_on_error:
            raise UsageError(message)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


COMPARE: dict[str, Callable[[float, float], bool]] = {
    "greater than": operator.gt, "at least": operator.ge, "below": operator.lt, "at most": operator.le
}  # fmt: skip


def number(
    kind: Callable[[str], float],
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> Callable[[str], float]:
    """argparse type: a finite number of `kind` within the given bounds, e.g. `number(float, at_least=0, below=1)`."""
    named = {"greater than": above, "at least": at_least, "below": below, "at most": at_most}
    bounds = {words: bound for words, bound in named.items() if bound is not None}
    allowed = " and ".join(f"{words} {bound}" for words, bound in bounds.items())

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None
        if not math.isfinite(value) or not all(COMPARE[words](value, bound) for words, bound in bounds.items()):
            raise argparse.ArgumentTypeError(f"must be {allowed or 'a finite number'}, got {text}")
        return value

    return parse


positive_int = number(int, above=0)
positive_float = number(float, above=0)
seed = number(int, at_least=0, below=2**32)
