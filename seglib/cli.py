"""
# What the command lines share: one-line errors, exit status 2

`python -m seglib.train`, `seglib.evaluate` and `seglib.export` report every mistake a
user can fix (a bad flag, a missing or unreadable file, a folder that cannot be
written, a device the machine does not have, a loss that became NaN) the way argparse
reports a bad flag: one line `error: ...` on stderr and exit status 2, no traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["USER_ERRORS", "ArgumentParser", "at_least", "fail", "one_line", "positive_float", "run"]

#: what a user can fix: bad values (ValueError, incl. unreadable files), files and
#: folders (OSError: missing, existing, not writable), a NaN loss (FloatingPointError)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)


def one_line(err: BaseException | str) -> str:
    """The message of `err` on one line (some, e.g. load_state_dict's, span several)."""
    return " ".join(part.strip() for part in str(err).splitlines() if part.strip())


def fail(message: BaseException | str) -> NoReturn:
    """Print `error: message` on stderr, on one line, and exit with status 2."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line, `error: ...` (usage is in `--help`)."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `low` (the error names the flag and the value)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (e.g. a scale factor)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def run(main: Callable[[], Any]) -> None:
    """Call a command line's `main()`; a user's mistake exits via `fail`."""
    try:
        main()
    except USER_ERRORS as err:
        fail(err)
