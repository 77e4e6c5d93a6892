"""
# Watching a run: live curves in a notebook, a progress bar in a terminal

d2l teaches training with two small helpers we reuse here: `d2l.Animator` redraws a
figure as points arrive (the train loss a few times per epoch at fractional x, the
validation pixel accuracy and mIoU once per epoch) and `d2l.Timer` measures the time
spent in training steps, from which images per second follow. Outside Jupyter a
figure cannot be redrawn in place, so the trainer shows a tqdm bar per epoch and
prints one line per epoch instead. Only rank 0 of a DDP run reports.

Used by `seglib.engine.training_loop.fit`; seen in `notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from seglib.engine import distributed as ddp
from seglib.engine.config import TrainConfig

__all__ = ["Board"]


class Board:
    """Live d2l.Animator in notebooks, tqdm + log lines elsewhere (rank 0 only).

    `history` rows (from a resumed checkpoint) are drawn first so the curve is whole.
    """

    def __init__(self, config: TrainConfig, animate: bool, history: list[dict]) -> None:
        self.active = ddp.is_main()
        self.animate = animate and self.active
        self.verbose = config.verbose and self.active and not self.animate
        self.animator = self.timer = None
        if self.animate:
            # d2l is installed apart (pip install --no-deps d2l): imported only to animate
            from d2l import torch as d2l

            # the validation curves get a marker per epoch, so that a run of one epoch
            # (or the first epoch of any run) shows its point instead of an empty legend
            self.animator = d2l.Animator(
                xlabel="epoch", ylabel="loss; accuracy, mIoU (0-1)", xlim=[0, config.epochs],
                legend=["train loss", "val loss", "val pixel acc", "val mIoU"],
                fmts=("-", "r:.", "m--.", "g-.."),
            )
            self.timer = d2l.Timer()
            for row in history:  # a resumed run: the epochs done so far, then onwards
                self.add_train(row["epoch"], row["train_loss"])
                self.add_epoch(row)

    def bar(self, loader: DataLoader, epoch: int, epochs: int) -> tqdm:
        """Iterate over `loader` behind a per-epoch tqdm bar.

        Silent unless verbose, and when stderr is not a terminal (a log file, CI): the
        epoch's log line says the same in one line instead of hundreds of redraws.
        """
        return tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                    disable=None if self.verbose else True, dynamic_ncols=True)

    def add_train(self, x: float, loss: float) -> None:
        """Plot the running train loss at fractional epoch `x` (notebooks only)."""
        if self.animator is not None:
            self.animator.add(x, (loss, None, None, None))

    def add_epoch(self, row: dict) -> None:
        """Plot an epoch's validation metrics, or log them as one line in a terminal."""
        if self.animator is not None:
            self.animator.add(row["epoch"], (None, row["val_loss"], row["val_pixel_acc"],
                                             row["val_miou"]))
        if self.verbose:
            tqdm.write(
                f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} | val loss "
                f"{row['val_loss']:.4f} | pixel acc {row['val_pixel_acc']:.4f} | mIoU "
                f"{row['val_miou']:.4f} | lr {row['lr']:.2e} | {row['seconds']:.1f} s | "
                f"{row['images_per_s']:.1f} img/s"
            )

    def summary(self, row: dict, images: int, device: torch.device) -> None:
        """d2l's closing lines under the live plot: final metrics and images per second."""
        if self.animate and self.timer is not None:
            tqdm.write(f"loss {row['train_loss']:.3f}, val pixel acc "
                       f"{row['val_pixel_acc']:.3f}, val mIoU {row['val_miou']:.3f}")
            if images:  # none when a resumed run had nothing left to train
                tqdm.write(f"{images / max(self.timer.sum(), 1e-9):.1f} images/sec on {device}")
