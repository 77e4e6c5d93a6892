"""Board: a tqdm bar only on a terminal, one log line per epoch everywhere."""

import io
import sys

from seglib.engine import TrainConfig
from seglib.engine.progress import Board


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    board = Board(TrainConfig(verbose=True), animate=False, history=[])
    bar = board.bar(range(3), 0, 1)
    assert bar.disable and list(bar) == [0, 1, 2]


def test_bar_on_a_terminal_and_silent_when_not_verbose(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert (
        not Board(TrainConfig(verbose=True), animate=False, history=[]).bar(range(3), 0, 1).disable
    )
    assert Board(TrainConfig(verbose=False), animate=False, history=[]).bar(range(3), 0, 1).disable
