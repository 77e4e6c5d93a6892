"""The attention explorer: recorded passes, composed map against a dense reference, widget."""

from __future__ import annotations

import io

import matplotlib
import pytest
import torch
from matplotlib.colors import LogNorm
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from PIL import Image

from seglib.course import AttentionExplorer, maps_for_pixel, plot_rcca_maps
from seglib.models import rcca_attention
from seglib.models.attention import criss_cross_mask
from seglib.models.ccnet import RCCAModule
from seglib.viz.attention import uniform_level
from tests.helpers import (
    dense_attention,
    tiny_ccnet,
)


@torch.no_grad()
def test_composed_map_is_a_row_of_the_product_of_the_dense_attentions(net64):
    net, image, att = net64
    head = net.head
    x0 = head.conva(net.backbone(image)[-1])  # (1, C, 8, 8): pass 1's input
    x1 = head.cca(x0)  # (1, C, 8, 8): pass 2's input
    a1, a2 = dense_attention(head.cca, x0), dense_attention(head.cca, x1)  # (64, 64) each
    assert att["size"] == (8, 8)
    assert not torch.allclose(a1, a2)  # the passes differ, so their order matters
    for r, c in [(0, 0), (3, 5), (7, 2), (7, 7)]:
        u = r * 8 + c
        pass1, pass2, composed = maps_for_pixel(att, (r, c))
        assert composed.dtype == torch.float64
        torch.testing.assert_close(pass1.flatten(), a1[u], rtol=0, atol=1e-12)
        torch.testing.assert_close(pass2.flatten(), a2[u], rtol=0, atol=1e-12)
        torch.testing.assert_close(composed.flatten(), (a2 @ a1)[u], rtol=0, atol=1e-12)


def test_pass_maps_are_distributions_on_the_cross_and_composed_covers_the_map(net64):
    _, _, att = net64
    cross = criss_cross_mask(8, 8)  # (64, 64)
    for r, c in [(0, 0), (4, 1), (7, 7)]:
        u = r * 8 + c
        pass1, pass2, composed = maps_for_pixel(att, (r, c))
        for amap in (pass1, pass2):
            assert float(amap.sum()) == pytest.approx(1.0, abs=1e-12)
            assert (amap.flatten()[~cross[u]] == 0).all()  # zero off the row and column
            assert (amap.flatten()[cross[u]] > 0).all()
        assert float(composed.sum()) == pytest.approx(1.0, abs=1e-12)
        assert (composed > 0).all()  # R = 2 reaches every pixel


def test_one_pass_cannot_be_composed_and_pixels_must_lie_on_the_map():
    att = rcca_attention(tiny_ccnet(recurrence=1), torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="two recorded passes"):
        maps_for_pixel(att, (0, 0))
    att = rcca_attention(tiny_ccnet(), torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="outside"):
        maps_for_pixel(att, (8, 0))


def test_static_figure_has_four_panels_log_colour_bars_and_gamma():
    net = tiny_ccnet(gamma=0.123)
    image = torch.randn(1, 3, 64, 96)
    att = rcca_attention(net, image)
    fig = plot_rcca_maps(image, att, (2, 5))
    assert isinstance(fig, Figure)
    assert fig not in map(matplotlib.pyplot.figure, matplotlib.pyplot.get_fignums())
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4 and len(fig.axes) == 4 + 3  # three colour bars
    assert "gamma = 0.123" in fig._suptitle.get_text()
    norms = [ax.images[-1].norm for ax in panels[1:]]
    assert all(isinstance(n, LogNorm) and n.vmin < n.vmax for n in norms)
    with pytest.raises(ValueError, match="4 axes"):
        plot_rcca_maps(image, att, (0, 0), axes=fig.axes[:2])


def test_each_panel_marks_its_uniform_level_and_the_largest_weight_against_it():
    net = tiny_ccnet()
    image = torch.randn(1, 3, 64, 96)  # 8x12 feature map
    att = rcca_attention(net, image)
    fig = plot_rcca_maps(image, att, (2, 5))
    panels = [ax for ax in fig.axes if ax.get_title()][1:]  # pass 1, pass 2, composed
    levels = [1 / 19, 1 / 19, 1 / 96]  # 1/(h+w-1) on a cross, 1/(hw) over the whole map
    assert levels[0] == uniform_level(8, 12)
    for ax, amap, level in zip(panels, maps_for_pixel(att, (2, 5)), levels):
        bar = ax.images[-1].colorbar
        (line,) = bar.ax.lines
        assert line.get_ydata() == pytest.approx([level, level])
        assert bar.norm.vmin <= level <= bar.norm.vmax
        assert f"max {float(amap.max()) / level:.1f}x uniform" in ax.get_title()
    assert "uniform" in fig._suptitle.get_text()


@torch.no_grad()
def test_a_head_that_attends_to_nothing_shows_uniform_passes_without_outline():
    torch.manual_seed(4)
    head = RCCAModule(64, 4).eval()
    head.cca.query_conv.weight.zero_()  # every energy 0: each pass spreads evenly
    head.cca.query_conv.bias.zero_()
    feature = torch.randn(1, 64, 6, 9)  # (1, C, h, w)
    att = rcca_attention(head, feature)
    fig = plot_rcca_maps(torch.randn(3, 48, 72), att, (3, 4))
    pass1, pass2 = [ax for ax in fig.axes if ax.get_title()][1:3]
    for ax in (pass1, pass2):
        assert "max 1.0x uniform" in ax.get_title()
        assert not [c for c in ax.collections if isinstance(c, ContourSet)]


def test_explorer_redraws_on_slider_and_click():
    pytest.importorskip("ipywidgets")
    net = tiny_ccnet()
    image = torch.randn(1, 3, 64, 96)  # 8x12 feature map
    explorer = AttentionExplorer(net, image, click=False)
    assert explorer.pixel == (4, 6)  # the centre by default
    ui = explorer.widget
    picture = explorer._image
    before = picture.value
    assert Image.open(io.BytesIO(before)).format == "PNG"
    assert "gamma = 0.7<" in explorer._label.value
    explorer._row.value = 1  # a slider move redraws the picture
    assert explorer.pixel == (1, 6) and picture.value != before
    # a click in the middle of the last panel's cell (7, 11) selects it
    x0, y0, x1, y1 = explorer._panels[3]
    explorer._on_click({"type": "click", "dataX": x1 - 0.5 * (x1 - x0) / 12,
                        "dataY": y1 - 0.5 * (y1 - y0) / 8})
    assert explorer.pixel == (7, 11) and (explorer._row.value, explorer._col.value) == (7, 11)
    explorer._on_click({"type": "click", "dataX": -5, "dataY": -5})  # outside: ignored
    assert explorer.pixel == (7, 11)
    assert isinstance(explorer.static_figure(), Figure)
    assert ui is explorer.widget
    with pytest.raises(ValueError, match="outside"):
        AttentionExplorer(net, image, pixel=(8, 0))


def test_explorer_listens_to_clicks_when_ipyevents_is_installed():
    pytest.importorskip("ipyevents")
    explorer = AttentionExplorer(tiny_ccnet(), torch.randn(1, 3, 64, 64), click=True)
    assert explorer.widget is not None
    assert explorer._events is not None and explorer._events.watched_events == ["click"]
