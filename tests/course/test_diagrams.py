"""seglib.course.diagrams: each architecture figure draws headless, says what it shows,
stays readable (no clipped, overflowing or overlapping text) and saves as a small PNG."""

from __future__ import annotations

import io
import math

import matplotlib.pyplot as plt
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.transforms import Bbox

from seglib.course import diagrams

pytestmark = pytest.mark.usefixtures("close_figures")


DRAW = {name: getattr(diagrams, name) for name in diagrams.__all__}


# Labels a learner must find in each figure ("×" is compared as "x")
LABELS = {
    "residual_blocks": ["BasicBlock", "Bottleneck", "expansion 1", "expansion 4", "3x3 conv",
                        "1x1 conv, 4C", "shortcut"],
    "dilation_and_output_stride": ["OS 8", "OS 16", "OS 32", "dilation 2", "dilation 4"],
    "criss_cross_module": ["H+W-1", "γ", "C/8", "Affinity", "softmax", "Aggregation", "(C', H, W)"],
    "rcca_path": ["pass 1", "pass 2", "CCA", "shared weights", "concat", "classifier"],
    "ccnet_overview": ["dil. 2", "dil. 4", "CCA", "0.4", "bilinear", "(K, 360, 480)", "45x60"],
    "refinenet_block": ["RCU", "MRF", "CRP", "max-pool\n5x5", "upsample"],
    "refinenet_cascade": ["RefineNet-1", "RefineNet-4", "1/4", "1/32", "256", "softmax",
                          "logits", "(K, 360, 480)", "12x15"],
}


def texts(fig: Figure) -> list[str]:
    """Every string drawn on the figure's axes, with "×" written as "x"."""
    return [t.get_text().replace("×", "x") for ax in fig.axes for t in ax.texts]


def test_every_diagram_is_listed_and_checked():
    assert set(LABELS) == set(diagrams.__all__)
    assert len(DRAW) == 7


@pytest.mark.parametrize("name", diagrams.__all__)
def test_diagram_draws_headless_and_saves_a_small_png(name: str):
    before = plt.get_fignums()
    fig = DRAW[name]()
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == before  # pyplot does not track it: shown once, never leaked
    width, height = fig.get_size_inches()
    assert 8 <= width <= 10.5 and height <= 6.5
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    png = buf.getvalue()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 200_000


@pytest.mark.parametrize("name", diagrams.__all__)
def test_diagram_names_what_it_shows(name: str):
    drawn = texts(DRAW[name]())
    missing = [label for label in LABELS[name] if not any(label in t for t in drawn)]
    assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize("name", diagrams.__all__)
def test_text_is_never_clipped_overflowing_or_overlapping(name: str):
    fig = DRAW[name]()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    labels = [(t.get_text(), t.get_window_extent(renderer).padded(-1)) for t in ax.texts]
    shapes = [p.get_window_extent(renderer) for p in ax.patches
              if not isinstance(p, FancyArrowPatch)]
    for text, box in labels:
        assert _inside(box, fig.bbox), f"{text!r} is clipped by the figure's edge"
        for shape in shapes:  # a box holds its text with a margin, or does not touch it
            assert _inside(box.padded(3), shape) or not box.overlaps(shape), (
                f"{text!r} crosses a box or touches its edge"
            )
    for i, (a, box_a) in enumerate(labels):
        for b, box_b in labels[i + 1 :]:
            assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"


def _inside(inner: Bbox, outer: Bbox) -> bool:
    return (outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0
            and inner.y1 <= outer.y1)


def _hw(size: tuple[int, int], stride: int) -> str:
    return f"{math.ceil(size[0] / stride)}x{math.ceil(size[1] / stride)}"


@pytest.mark.parametrize("size", [(360, 480), (100, 150)])
def test_output_stride_figure_shows_the_map_size_of_every_stage(size: tuple[int, int]):
    drawn = texts(diagrams.dilation_and_output_stride(size))
    # layer4 at 1/32 only for OS 32; 1/16 in layer3 (OS 32, 16) and layer4 (OS 16);
    # 1/8 in layer2 of all three rows and in layer3 and layer4 of OS 8
    counts = {32: 1, 16: 3, 8: 5, 4: 6}
    assert f"{size[0]}x{size[1]}" in " ".join(drawn)
    for stride, count in counts.items():
        found = [t for t in drawn if t.startswith(_hw(size, stride) + " ")]
        assert len(found) == count, (stride, found)


def test_criss_cross_figure_shows_every_tensor_with_its_shape():
    drawn = texts(diagrams.criss_cross_module())
    for tensor in ["H\n(C, H, W)", "Q\n(C', H, W)", "K\n(C', H, W)", "V\n(C, H, W)",
                   "A\n(H+W-1, H, W)", "H'\n(C, H, W)"]:
        assert tensor in drawn
    assert sum(t == "1x1 conv" for t in drawn) == 3


def test_rcca_grids_mark_the_four_pixels_of_the_two_pass_argument():
    drawn = texts(diagrams.rcca_path())
    for pixel in "zhvu":
        assert drawn.count(pixel) == 2  # once in each pass's grid
    assert drawn.count("CCA") == 2  # R = 2 boxes of the same module


def test_output_stride_figure_writes_the_ceiling_as_a_ceiling():
    drawn = " ".join(texts(diagrams.dilation_and_output_stride()))
    # spelled out: at 100 dpi the glyphs ⌈ ⌉ read as square brackets, [n / 2]
    assert "rounds up, ceil(n / 2)" in drawn and "ceil(23 / 2) = 12" in drawn
    assert "⌈" not in drawn and "[n" not in drawn


def test_cascade_upsamples_logits_and_applies_the_softmax_after():
    # seglib's RefineNet.forward resizes the classifier's logits; the softmax is the loss's
    ax = diagrams.refinenet_cascade().axes[0]
    where = {t.get_text(): t.get_position() for t in ax.texts}
    assert not any("conv" in t and "softmax" in t for t in where)
    (upsample,) = [xy for t, xy in where.items() if "upsample" in t]
    (softmax,) = [xy for t, xy in where.items() if "softmax" in t]
    (logits,) = [xy for t, xy in where.items() if t.startswith("logits")]
    # the flow runs right, then down from the upsampling: logits, then the softmax below them
    assert softmax[1] < logits[1] < upsample[1]
