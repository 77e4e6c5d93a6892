"""seglib.course.resolution_ceiling: the resolution ceiling against a numpy reference and
hand-made label maps."""

import numpy as np
import pytest
import torch

from seglib.course.resolution_ceiling import cell_share_prediction, resolution_ceiling


def bilinear_indices(out_size: int, in_size: int):
    """PyTorch's bilinear source indices and weights (align_corners=False), in numpy."""
    src = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, src - i0


def numpy_shares_prediction(labels, stride, K, ignore=255):
    """Loops over the cells: shares among each cell's real pixels, then bilinear, argmax."""
    B, H, W = labels.shape
    h, w = -(-H // stride), -(-W // stride)
    shares = np.zeros((B, K, h, w))
    for i in range(h):
        for j in range(w):
            cell = labels[:, i * stride:(i + 1) * stride, j * stride:(j + 1) * stride]
            for c in range(K):
                shares[:, c, i, j] = (cell == c).reshape(B, -1).mean(1)
    y0, y1, ly = bilinear_indices(H, h)
    x0, x1, lx = bilinear_indices(W, w)
    top = shares[:, :, y0][..., x0] * (1 - lx) + shares[:, :, y0][..., x1] * lx
    bottom = shares[:, :, y1][..., x0] * (1 - lx) + shares[:, :, y1][..., x1] * lx
    up = top * (1 - ly)[:, None] + bottom * ly[:, None]  # (B, K, H, W)
    top2 = np.sort(up, axis=1)[:, -2:]
    return up.argmax(1), top2[:, 1] - top2[:, 0]


@pytest.mark.parametrize("stride", [1, 3, 4, 8])
def test_prediction_equals_a_numpy_reference_with_partial_cells_and_void(stride):
    rng = np.random.default_rng(stride)
    # blobs rather than noise, so that shares differ; sizes not divisible by the stride
    coarse = rng.integers(0, 5, size=(2, 6, 7))
    labels = np.kron(coarse, np.ones((3, 3), dtype=int))[:, :17, :19]
    labels[rng.random(labels.shape) < 0.1] = 255
    labels[:, 0, :5] = 4  # a thin stripe
    ref, margin = numpy_shares_prediction(labels, stride, 5)
    pred = cell_share_prediction(torch.from_numpy(labels), stride, 5).numpy()
    clear = margin > 1e-5  # exact ties may break either way in float32
    assert clear.mean() > 0.8
    np.testing.assert_array_equal(pred[clear], ref[clear])


def test_stride_1_and_cell_aligned_stripes_are_exact():
    stripes = torch.arange(24).div(4, rounding_mode="floor") % 3  # width-4 stripes
    labels = stripes.expand(2, 12, 24).clone()
    labels[0, :4, :4] = 255
    for stride in (1, 2, 4):
        iou = resolution_ceiling(labels, stride, 3)
        torch.testing.assert_close(iou, torch.ones(3, dtype=torch.float64))


def test_a_pole_thinner_than_half_a_cell_disappears():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[0, :, 5] = 1  # one pixel wide: a quarter of every cell at stride 4
    iou = resolution_ceiling(labels, 4, 3)
    assert iou[1] == 0  # the pole is never predicted
    assert iou[0] == pytest.approx((256 - 16) / 256)
    assert torch.isnan(iou[2])  # absent from labels and predictions
    assert resolution_ceiling(labels, 1, 3)[1] == 1


def test_batches_from_an_iterable_add_up():
    labels = torch.randint(0, 4, (5, 9, 11))
    whole = resolution_ceiling(labels, 4, 4, chunk=2)
    torch.testing.assert_close(resolution_ceiling(iter(labels.split(3)), 4, 4), whole)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        cell_share_prediction(torch.zeros(4, 4, dtype=torch.long), 2, 3)
    with pytest.raises(ValueError, match="stride"):
        cell_share_prediction(torch.zeros(1, 4, 4, dtype=torch.long), 0, 3)
    with pytest.raises(ValueError, match="found 7"):
        cell_share_prediction(torch.full((1, 4, 4), 7), 2, 3)
