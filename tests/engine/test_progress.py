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


def test_live_plot_has_a_labelled_axis_and_one_epoch_shows_its_points(monkeypatch):
    """A run resumed after one epoch (notebook 06's demo) must still show every
    validation curve: a single point needs a marker, a line alone draws nothing."""
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    monkeypatch.setattr("IPython.display.clear_output", lambda *a, **k: None)
    row = {"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "val_pixel_acc": 0.4,
           "val_miou": 0.1, "lr": 0.1, "seconds": 1.0, "images_per_s": 1.0}
    board = Board(TrainConfig(epochs=3), animate=True, history=[row])
    ax = board.animator.axes[0]
    assert ax.get_xlabel() == "epoch" and "mIoU" in ax.get_ylabel()
    train, *val = ax.get_lines()  # in the legend's order: train loss, then val curves
    assert [t.get_text() for t in ax.get_legend().get_texts()][1:] == [
        "val loss", "val pixel acc", "val mIoU"]
    for line in val:
        assert line.get_marker() not in ("None", None, "") and len(line.get_xdata()) == 1
