r"""
# Watching a run learn: one frame's prediction after every epoch

The history of `fit` is numbers: a loss, a pixel accuracy, an mIoU per epoch. What they
mean is easier to see on a picture: one fixed validation frame, predicted after epoch
1, 2, 5, ... to the last. `PredictionSnapshots` is a `fit` callback that records that
prediction after each epoch and keeps it in a file beside the checkpoints
(`snapshots.npz`), so a resumed run, or a notebook opened the next day, still has the
whole series. `load_snapshots` reads it back; `seglib.viz.snapshots` draws it.

The snapshot is taken in eval mode under `torch.no_grad()` and uses no random numbers,
so a run with snapshots trains exactly as one without them. Used in
`notebooks/06_training.ipynb`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seglib.engine import distributed as ddp
from seglib.engine.scoring import label_size_logits

__all__ = ["PredictionSnapshots", "Snapshots", "load_snapshots"]


@dataclass
class Snapshots:
    """One frame and the predictions made for it: `image` the normalised (3, H, W) frame
    (float16, as the datasets return it; `seglib.viz.masks.as_rgb` shows it), `label`
    (H, W) uint8 class indices (255: void), `predictions` {epoch: (H, W) uint8}."""

    image: np.ndarray
    label: np.ndarray
    predictions: dict[int, np.ndarray]


def load_snapshots(path: str | os.PathLike) -> Snapshots:
    """The snapshots `PredictionSnapshots` wrote to `path`, epochs in increasing order."""
    with np.load(path) as f:
        epochs = sorted(int(k.removeprefix("epoch_")) for k in f.files if k.startswith("epoch_"))
        return Snapshots(f["image"], f["label"], {e: f[f"epoch_{e}"] for e in epochs})


class PredictionSnapshots:
    """A `fit(callback=...)` that predicts one fixed frame after every epoch and adds the
    prediction to the file `path` (written atomically, so an interrupted run leaves
    the snapshots of its finished epochs; a fresh run into the same file replaces the
    epochs it reaches and drops the later ones).

    Args:
        model: the network being trained (the module given to `fit`).
        image: the frame, a normalised (3, H, W) tensor as the datasets return it.
        label: its (H, W) label map, stored beside the predictions for the figure.
        num_classes: K, the number of classes the model predicts.
        path: the `.npz` file; an existing one is extended (a resumed run), its frame
            must be the same size.
        input_scale: the recipe's `eval_scale`: the frame is resized by it before the
            model, and the logits back to the frame's size, as in evaluation.
    """

    def __init__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor,
                 num_classes: int, path: str | os.PathLike, input_scale: float = 1.0) -> None:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected one normalised image (3, H, W), got {tuple(image.shape)}")
        if tuple(label.shape) != tuple(image.shape[-2:]):
            raise ValueError(f"label {tuple(label.shape)} does not match the image's size "
                             f"{tuple(image.shape[-2:])}")
        self.model, self.image, self.input_scale = model, image, input_scale
        self.num_classes = num_classes
        self.path = Path(path)
        self.frame = image.cpu().numpy().astype(np.float16)  # (3, H, W), half the bytes
        self.label = label.cpu().numpy().astype(np.uint8)  # (H, W)
        earlier = load_snapshots(self.path) if self.path.is_file() else None
        if earlier is not None and earlier.label.shape != self.label.shape:
            raise ValueError(f"{self.path} holds snapshots of another frame size")
        # read once: every epoch adds to this and rewrites the file, never reads it back
        self.saved = earlier.predictions if earlier is not None else {}

    @torch.no_grad()
    def predict(self) -> np.ndarray:
        """The model's (H, W) class map for the frame; the model's mode is restored."""
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            x = self.image[None].to(device)  # (1, 3, H, W)
            logits = label_size_logits(self.model, x, self.label.shape, self.num_classes,
                                       input_scale=self.input_scale)  # (1, K, H, W)
        finally:
            self.model.train(was_training)
        return logits[0].argmax(0).cpu().numpy().astype(np.uint8)

    def __call__(self, row: dict) -> None:
        """Record the prediction after the epoch of `row` (rank 0 only under DDP)."""
        if not ddp.is_main():
            return
        epoch = int(row["epoch"])
        # epochs are written in order, also across a resume: a later one in the file was
        # left by an earlier run into the same folder (overwrite=True) and is dropped
        self.saved = {e: p for e, p in self.saved.items() if e < epoch}
        self.saved[epoch] = self.predict()
        arrays = {"image": self.frame, "label": self.label,
                  **{f"epoch_{e}": p for e, p in sorted(self.saved.items())}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, self.path)  # atomic: a crash leaves the old file or the new one
