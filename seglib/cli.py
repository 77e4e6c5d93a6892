"""
# What the command lines share: one-line errors, exit status 2

`python -m seglib.train`, `seglib.evaluate` and `seglib.export` report every mistake a
user can fix (a bad flag, a missing or unreadable file, a folder that cannot be
written, a device the machine does not have, a loss that became NaN) the way argparse
reports a bad flag: one line `error: ...` on stderr and exit status 2, no traceback.
Anything else is a bug and keeps its traceback. A stop asked for (Ctrl-C, or SIGTERM,
which is handled the same way so that `finally` blocks remove half-written files) is
one line too, the one the interrupted code gives (training says after which epoch and
how to continue), with the shell's exit status 128 + signal (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = ["USER_ERRORS", "ArgumentParser", "at_least", "check_eval_scale", "fail", "one_line",
           "positive_float", "run"]

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
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def check_eval_scale(scales: float | Sequence[float], size: tuple[int, int]) -> None:
    """Raise a ValueError naming `--eval-scale` unless every scale leaves images of
    `size` (h, w) at least one pixel a side (the resize rounds down: 96 * 0.01 -> 0)."""
    h, w = size
    for s in [scales] if isinstance(scales, int | float) else scales:
        if math.floor(min(h, w) * s) < 1:
            smallest = math.ceil(1000 / min(h, w)) / 1000  # 3 decimals, rounded up
            raise ValueError(
                f"--eval-scale {s:g} shrinks the {h}x{w} evaluation images to "
                f"{math.floor(h * s)}x{math.floor(w * s)} pixels: use --eval-scale >= "
                f"{smallest:g} for them"
            )


class _Stop(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it unwinds as Ctrl-C does."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def run(main: Callable[[], Any]) -> None:
    """Call a command line's `main()`; a user's mistake exits via `fail`, a stop asked
    for (Ctrl-C, SIGTERM) with one line and status 128 + signal number."""
    try:
        previous = signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread: signals cannot be handled here
        previous = None
    try:
        main()
    except USER_ERRORS as err:
        fail(err)
    except KeyboardInterrupt as err:
        signum = signal.SIGINT
        for e in (err, err.__cause__, err.__context__):  # fit re-raises with its epoch
            if isinstance(e, _Stop):
                signum = signal.SIGTERM
        said = one_line(err) if not isinstance(err, _Stop) else ""
        print(said or f"interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
