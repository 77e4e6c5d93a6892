r"""
# Exploring where the RCCA head looks, pixel by pixel

CCNet's head applies ONE criss-cross attention twice (`seglib.models.ccnet.RCCAModule`).
Pass 1 lets query pixel $u$ read its row and column; pass 2 runs the same module on
pass 1's output, so $u$ reads its cross again, but every pixel $v$ on that cross has
already read ITS own cross. Multiplying the two attention matrices (each $HW \times HW$,
zero off the cross) gives how much of pixel $j$'s information reaches $u$ through both
passes:

$$C_{u,j} = \sum_{v} A^{(2)}_{u,v}\, A^{(1)}_{v,j},$$

positive for every $j$: two passes connect every pixel to every other. The attention
output is added to the input scaled by the learnt gate $\gamma$
($H' = H + \gamma \sum_i A_{i,u} V_i$), so $\gamma$ says how much the maps matter at all.

Three layers, each usable alone:

* `rcca_attention(model, image)` runs the network once and records both passes' weights
  (pure computation, no widgets);
* `maps_for_pixel(att, (row, col))` returns pass 1, pass 2 and the composed map of one
  query pixel, and `plot_rcca_maps` draws them on a log colour scale over the photograph;
* `AttentionExplorer(model, image)` is the interactive version (ipywidgets): sliders for
  the query pixel (and clicks on the picture when `ipyevents` is installed), the figure
  re-rendered as a PNG on every change; `.static_figure()` is the same picture as an
  ordinary matplotlib figure, for a stored notebook (GitHub, nbval).

Every map is read against the weight it would have if the pixel attended to nothing
(`seglib.viz.attention.uniform_level`): $1/(h+w-1)$ on a pass's cross, $1/(hw)$ for the
composed map, which covers every pixel. Each colour bar carries it as a dashed line,
the cells above it are outlined, and each panel's title says how many times the level
the largest weight is (about 1x: the map is close to uniform, it attends to nothing).

Used in notebooks `02_criss_cross_attention.ipynb` (the maps) and `08_attention.ipynb`.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from torch import Tensor, nn

from seglib.models.attention import attention_to_map, cross_positions
from seglib.models.rcca_probes import rcca_attention
from seglib.viz.attention import mark_uniform, outline_above, uniform_level
from seglib.viz.masks import as_rgb, hide_ticks

__all__ = ["maps_for_pixel", "plot_rcca_maps", "AttentionExplorer"]

# the colour scale spans at most this many decades below the map's largest weight;
# weaker weights are drawn in the lowest colour (a trained map can reach 1e-30)
_DECADES = 4.0
_PANEL_TITLES = ("pass 1: row + column", "pass 2: row + column", "both passes composed")


def maps_for_pixel(att: dict[str, Any], pixel: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Where query pixel `(row, col)` looks in pass 1, in pass 2, and through both.

    Args:
        att: the dict of `rcca_attention` (at least two passes recorded).
        pixel: the query (row, col) in feature-map coordinates.

    Returns:
        `(pass1, pass2, composed)`, each (h, w) in the weights' dtype. The pass maps are
        the query's softmax weights, zero off its row and column, summing to one.
        `composed[j] = sum_v A2[u, v] * A1[v, j]`: the share of pixel j's information that
        reaches u through the two passes (row u of the product of the two dense
        attention matrices); it sums to one and is positive on the whole map.
    """
    weights = att["weights"]
    if len(weights) < 2:
        raise ValueError(
            f"need two recorded passes to compose, got {len(weights)} (a CCNet built with "
            f"recurrence={att.get('recurrence')}); the paper's R = 2 reaches every pixel"
        )
    a1, a2 = weights[0], weights[1]  # (h, w, h+w-1) each
    h, w = a1.shape[:2]
    r, c = (int(v) for v in pixel)
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"pixel {tuple(pixel)} is outside the {h}x{w} feature map")
    rows, cols = cross_positions(h, w, device=a1.device)  # (h, w, h+w-1) each
    # the pixels v on u's cross, and the pass-2 weight A2[u, v] of each
    v_rows, v_cols = rows[r, c], cols[r, c]  # (L,), L = h+w-1
    # A2[u, v] * A1[v, :] scattered onto the map: (L, L) products at (L, L) positions
    contrib = a2[r, c][:, None] * a1[v_rows, v_cols]  # (L, L)
    composed = a1.new_zeros(h, w)
    composed.index_put_((rows[v_rows, v_cols], cols[v_rows, v_cols]), contrib, accumulate=True)
    return attention_to_map(a1, r, c), attention_to_map(a2, r, c), composed


def _log_norm(values: np.ndarray, level: float) -> LogNorm:
    """A log colour scale from the largest weight down `_DECADES` decades (or the smallest),
    always wide enough to hold the uniform `level`."""
    positive = values[values > 0]
    vmax = max(float(positive.max()), level)
    vmin = min(max(float(positive.min()), vmax * 10.0**-_DECADES), level)
    if vmin >= vmax:  # a constant map (e.g. a 1x1 feature)
        vmin = vmax / 10.0
    return LogNorm(vmin=vmin, vmax=vmax)


def plot_rcca_maps(
    image: Any,
    att: dict[str, Any],
    pixel: tuple[int, int],
    axes: Any = None,
    alpha: float = 0.65,
    cmap: str = "inferno",
) -> Figure:
    """Four panels: the image with the query marked, pass 1, pass 2, the passes composed.

    Each map (feature-map size) is stretched over the image on a log colour scale
    (`LogNorm`, with a colour bar): attention weights span decades, and a linear scale
    shows only the few largest. Pixels off the cross (zero weight) stay transparent.
    The uniform level (`uniform_level`: 1/(h+w-1) for a pass, 1/(hw) composed) is a
    dashed line on each colour bar and a dashed outline around the cells above it;
    each panel's title gives the largest weight in multiples of it. The figure's title
    gives the query and gamma, which scales the attention output.

    Args:
        image: the input image (normalised (3, H, W) or (1, 3, H, W) tensor, or uint8
            (H, W, 3) array): the one `att` was computed on.
        att: the dict of `rcca_attention`.
        pixel: the query (row, col) in feature-map coordinates.
        axes: four axes to draw into (any shape, e.g. a 2x2 grid); None makes a new row
            of four.
        alpha: opacity of the maps over the photograph.
        cmap: matplotlib colour map of the weights.

    Returns:
        the figure. A new one is closed in pyplot, so a notebook shows it once when the
        call is a cell's last expression.
    """
    if isinstance(image, torch.Tensor) and image.dim() == 4:
        image = image[0]  # (3, H, W)
    rgb = as_rgb(image)  # (H, W, 3) in [0, 1]
    maps = [m.double().numpy() for m in maps_for_pixel(att, pixel)]  # 3 x (h, w)
    h, w = att["size"]
    r, c = pixel
    big_h, big_w = rgb.shape[:2]
    extent = (0, big_w, big_h, 0)
    y, x = (r + 0.5) * big_h / h, (c + 0.5) * big_w / w  # query cell centre, image coords
    if axes is None:
        panel = 2.4
        fig = plt.figure(
            figsize=(4 * panel * big_w / big_h + 2.4, panel + 0.7), layout="constrained"
        )
        plt.close(fig)  # shown once as a cell's value, not again by pyplot
        axes = fig.subplots(1, 4)
    axes = list(np.asarray(axes).ravel())
    if len(axes) != 4:
        raise ValueError(f"need 4 axes (image, pass 1, pass 2, composed), got {len(axes)}")
    fig = axes[0].figure

    def mark(ax: Axes) -> None:
        ax.plot([x], [y], marker="x", color="cyan", markersize=8, markeredgewidth=2)
        hide_ticks(ax)

    axes[0].imshow(rgb, extent=extent)
    axes[0].set_title(f"query pixel ({r}, {c})", fontsize=9)
    mark(axes[0])
    cross, every = uniform_level(h, w), 1.0 / (h * w)  # a pass's level, the composed one's
    levels = ((cross, "1/(h+w-1)"), (cross, "1/(h+w-1)"), (every, "1/(hw)"))
    for ax, amap, title, (level, text) in zip(axes[1:], maps, _PANEL_TITLES, levels):
        ax.imshow(rgb, extent=extent)
        # zero weights (off the cross) masked: transparent, the photograph shows through
        shown = np.ma.masked_less_equal(amap, 0.0)
        im = ax.imshow(shown, cmap=cmap, norm=_log_norm(amap, level), alpha=alpha,
                       extent=extent, interpolation="nearest")
        outline_above(ax, amap, level, extent)
        ax.set_title(f"{title}\nmax {amap.max() / level:.1f}x uniform", fontsize=9)
        mark(ax)
        mark_uniform(fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03), level, text)
    fig.suptitle(
        f"criss-cross attention of pixel ({r}, {c}) on the {h}x{w} feature map, log scale, "
        f"uniform level dashed; gamma = {att['gamma']:.3g} (scales the attention output)",
        fontsize=10,
    )
    return fig


class AttentionExplorer:
    """Pick a query pixel and see pass 1, pass 2 and both passes composed (ipywidgets).

    The network runs once (`rcca_attention`); each change of the query only redraws
    `plot_rcca_maps` (a 2x2 grid) into an `ipywidgets.Image` as PNG bytes, so the UI works
    wherever the core widgets do: JupyterLab, Jupyter Notebook, VS Code, Colab.

    Two `IntSlider`s pick the row and column (feature-map coordinates). With the optional
    package `ipyevents` installed (and not on Colab, where third-party widgets need
    `output.enable_custom_widget_manager()` first; pass `click=True` after calling it),
    a click on any panel picks the pixel under the mouse as well.

    Args:
        model: a CCNet (or an RCCAModule with a feature map as `image`), see
            `rcca_attention`.
        image: one normalised image (1, 3, H, W) or (3, H, W).
        pixel: the first query (row, col); None takes the centre of the feature map.
        click: use ipyevents for click-to-select: None = when installed and not on Colab.
        dpi: resolution of the rendered PNG (72: about 700 pixels wide for CamVid).

    Show it with `.display()` or as a cell's last expression; `.static_figure()` returns
    the current view as a matplotlib figure (a stored output that GitHub shows).
    """

    def __init__(
        self,
        model: nn.Module,
        image: Tensor,
        pixel: tuple[int, int] | None = None,
        *,
        click: bool | None = None,
        dpi: int = 72,
    ) -> None:
        self.image = image.detach().cpu()
        if self.image.dim() == 4:
            self.image = self.image[0]  # (3, H, W)
        self.att = rcca_attention(model, self.image)
        h, w = self.att["size"]
        self.pixel = (h // 2, w // 2) if pixel is None else self._checked(pixel)
        self.click = click
        self.dpi = dpi
        self._widget: Any = None
        self._panels: list[tuple[float, float, float, float]] = []  # PNG pixel boxes
        self._holding = False

    def _checked(self, pixel: tuple[int, int]) -> tuple[int, int]:
        h, w = self.att["size"]
        r, c = (int(v) for v in pixel)
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"pixel {tuple(pixel)} is outside the {h}x{w} feature map")
        return r, c

    def static_figure(self) -> Figure:
        """The current query as a matplotlib figure (a row of four panels, `plot_rcca_maps`).

        For the stored notebook: GitHub and nbval see this, not the live widget.
        """
        return plot_rcca_maps(self.image, self.att, self.pixel)

    def render(self) -> bytes:
        """PNG bytes of the current view (2x2 grid); remembers where the panels are."""
        panel = 3.0
        _, big_h, big_w = self.image.shape
        fig = Figure(
            figsize=(2 * panel * big_w / big_h + 1.6, 2 * panel + 0.6), layout="constrained"
        )
        axes = fig.subplots(2, 2)
        plot_rcca_maps(self.image, self.att, self.pixel, axes=axes)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)  # full figure: pixels = inches * dpi
        size = np.array([fig.get_figwidth(), fig.get_figheight()]) * self.dpi  # PNG pixels
        # panel boxes in PNG pixels (origin top left, as clicks come): (x0, y0, x1, y1);
        # the positions are final once savefig has run the constrained layout
        self._panels = []
        for ax in axes.ravel():
            (x0, y0), (x1, y1) = ax.get_position().get_points() * size  # origin bottom left
            self._panels.append((float(x0), float(size[1] - y1), float(x1), float(size[1] - y0)))
        return buf.getvalue()

    def pixel_at(self, x: float, y: float) -> tuple[int, int] | None:
        """The feature-map cell under PNG position (x, y) in any panel, or None."""
        h, w = self.att["size"]
        for x0, y0, x1, y1 in self._panels:
            if x0 <= x < x1 and y0 <= y < y1:
                return int((y - y0) / (y1 - y0) * h), int((x - x0) / (x1 - x0) * w)
        return None

    def select(self, row: int, col: int) -> None:
        """Make (row, col) the query: moves the sliders and redraws once."""
        self.pixel = self._checked((row, col))
        if self._widget is None:
            return
        self._holding = True  # two slider moves, one redraw
        try:
            self._row.value, self._col.value = self.pixel
        finally:
            self._holding = False
        self._redraw()

    def _redraw(self) -> None:
        self._image.value = self.render()
        r, c = self.pixel
        h, w = self.att["size"]
        self._label.value = (
            f"query <b>({r}, {c})</b> of the {h}x{w} feature map &nbsp; "
            f"<b>gamma = {self.att['gamma']:.3g}</b> &nbsp; uniform level (dashed) "
            f"1/{h + w - 1} per pass, 1/{h * w} composed &nbsp; {self._hint}"
        )

    def _on_slider(self, change: dict) -> None:
        if self._holding:
            return
        self.pixel = (self._row.value, self._col.value)
        self._redraw()

    def _on_click(self, event: dict) -> None:
        # ipyevents gives an Image's click in its natural pixels as dataX, dataY
        cell = self.pixel_at(event.get("dataX", -1), event.get("dataY", -1))
        if cell is not None:
            self.select(*cell)

    @property
    def widget(self) -> Any:
        """The ipywidgets UI (built on first use): sliders, a caption and the picture."""
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> Any:
        try:
            import ipywidgets as widgets  # optional dependency (seglib[lab]; preinstalled on Colab)
        except ImportError as err:
            raise ImportError(
                "AttentionExplorer's widget needs ipywidgets: pip install ipywidgets "
                "(or seglib[lab]); static_figure() works without it"
            ) from err
        h, w = self.att["size"]
        style = {"description_width": "initial"}
        self._row = widgets.IntSlider(
            value=self.pixel[0],
            min=0,
            max=h - 1,
            description="row",
            continuous_update=False,
            style=style,
        )
        self._col = widgets.IntSlider(
            value=self.pixel[1],
            min=0,
            max=w - 1,
            description="col",
            continuous_update=False,
            style=style,
        )
        self._label = widgets.HTML()
        self._image = widgets.Image(format="png")
        self._image.add_class("seglib-attention-explorer-image")
        self._events = self._click_events()
        self._hint = "(click a panel or move the sliders)" if self._events is not None else ""
        self._row.observe(self._on_slider, names="value")
        self._col.observe(self._on_slider, names="value")
        self._redraw()
        box = widgets.VBox([widgets.HBox([self._row, self._col]), self._label, self._image])
        box.add_class("seglib-attention-explorer")
        return box

    def _click_events(self) -> Any:
        """An ipyevents.Event on the picture, or None without ipyevents (sliders only)."""
        use = self.click if self.click is not None else "google.colab" not in sys.modules
        if not use:
            return None
        try:
            import ipyevents  # optional dependency (clicks; the sliders work without it)
        except ImportError:
            if self.click:
                raise
            return None
        events = ipyevents.Event(source=self._image, watched_events=["click"])
        events.on_dom_event(self._on_click)
        return events

    def display(self) -> None:
        """Show the UI in the notebook."""
        display(self.widget)

    def _ipython_display_(self) -> None:
        self.display()
