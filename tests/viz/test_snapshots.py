"""seglib.viz.snapshots: the frame, its label and the predictions, each with its score."""

import matplotlib
import numpy as np
import pytest
import torch

from seglib.viz.snapshots import frame_accuracy, plot_snapshots

matplotlib.use("Agg")


def test_frame_accuracy_counts_labelled_pixels_only():
    label = np.array([[0, 1, 255], [2, 2, 255]])
    prediction = np.array([[0, 0, 1], [2, 1, 1]])
    assert frame_accuracy(prediction, label) == pytest.approx(2 / 4)  # right: (0,0), (1,0)
    assert np.isnan(frame_accuracy(prediction, np.full((2, 3), 255)))
    with pytest.raises(ValueError, match="differ in size"):
        frame_accuracy(prediction[:1], label)


def test_plot_snapshots_draws_image_label_and_one_panel_per_epoch():
    image = torch.zeros(3, 6, 8)
    label = np.zeros((6, 8), dtype=np.uint8)
    label[:, 4:] = 1
    predictions = {1: np.zeros((6, 8), np.uint8), 5: label.copy()}
    axes = plot_snapshots(image, label, predictions)
    titles = [ax.get_title() for ax in axes]
    assert titles == ["image", "label", "epoch 1: 50 % right", "epoch 5: 100 % right"]
    with pytest.raises(ValueError, match="no predictions"):
        plot_snapshots(image, label, {})
    matplotlib.pyplot.close("all")
