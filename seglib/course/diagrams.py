"""
# Architecture diagrams: the papers' figures, drawn with matplotlib

Boxes, arrows and tensor shapes for the networks of the course, one function per
figure: ResNet's residual blocks and dilated stages (notebook `01`), the criss-cross
attention module of [CCNet](https://arxiv.org/abs/1811.11721) (its Fig. 3, notebook `02`),
the recurrent RCCA head and the whole CCNet (`03`), and the block and 4-cascade of
[RefineNet](https://arxiv.org/abs/1611.06612) (`04`). Plain matplotlib, so every picture
is an ordinary PNG output that looks the same on GitHub, JupyterLab and Colab.

Each function returns a `matplotlib.figure.Figure` that pyplot no longer tracks: a notebook
shows it once when the call is a cell's last expression (no `;`, no `plt.show()`), and
`fig.savefig(path, dpi=100)` writes it. One colour means one kind of layer in every
figure (`_COLOURS`), and the axes use inches as units, so positions and font sizes stay
predictable.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path

__all__ = [
    "residual_blocks",
    "dilation_and_output_stride",
    "criss_cross_module",
    "rcca_path",
    "ccnet_overview",
    "refinenet_block",
    "refinenet_cascade",
]

# Kind of layer -> (fill, edge, legend name): the same colour means the same kind everywhere
_COLOURS = {
    "tensor": ("#f2f2f2", "#7a7a7a", "tensor"),
    "conv": ("#d6e6f5", "#3b78b5", "convolution"),
    "dilated": ("#9fc3e7", "#1f4e85", "dilated conv"),
    "attention": ("#fbd5ad", "#d2741e", "attention"),
    "pool": ("#d4ecce", "#4a9441", "pooling"),
    "sum": ("#fff0b3", "#b8931c", "sum / concat"),
    "resize": ("#e5dbf3", "#7b52b9", "resize"),
    "act": ("#ffffff", "#9a9a9a", "activation"),
    "refine": ("#d3eeea", "#2a8c82", "RefineNet block"),
    "group": ("#fafafa", "#b5b5b5", "group"),  # a dashed frame around related layers
}
_INK, _MUTED, _FONT = "#222222", "#5f5f5f", 8.5
_SIZE = (360, 480)  # the CamVid frame used for the shape labels
_CELL = 0.26  # side of a pixel in the 7x7 grids of `rcca_path`, inches


@dataclass(frozen=True)
class _Box:
    """A drawn box: centre `(x, y)` and size `(w, h)` in inches; edge midpoints for arrows."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)


def _canvas(width: float, height: float, title: str, kinds: list[str]) -> tuple[Figure, Axes]:
    """A figure with one axes covering it, inches as data units, a title on top and, in a
    0.3 in strip below y = 0, the legend of the `kinds` of layer drawn."""
    # Made by pyplot, which loads the notebook backend that displays figures as PNG, then
    # closed, so that pyplot does not show it a second time at the end of the cell
    fig = plt.figure(figsize=(width, height + 0.3))
    plt.close(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(-0.3, height)
    ax.set_axis_off()
    ax.text(width / 2, height - 0.25, title, ha="center", va="center", fontsize=12,
            weight="bold", color=_INK)
    steps = [0.45 + 0.062 * len(_COLOURS[kind][2]) for kind in kinds]
    x = (width - sum(steps)) / 2
    for kind, step in zip(kinds, steps):
        _box(ax, x + 0.1, -0.14, "", kind, w=0.2, h=0.14)
        _note(ax, x + 0.26, -0.14, _COLOURS[kind][2], ha="left")
        x += step
    return fig, ax


def _box(ax: Axes, x: float, y: float, text: str, kind: str = "conv", w: float = 1.1,
         h: float = 0.5, size: float = _FONT, dashed: bool = False) -> _Box:
    """A rounded box of colour `kind` centred at `(x, y)`, with centred text."""
    fill, edge, _ = _COLOURS[kind]
    r = min(0.06, w / 4, h / 4)
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, f"round,pad=0,rounding_size={r}",
                                fc=fill, ec=edge, lw=1.1, ls="--" if dashed else "-"))
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=size, color=_INK)
    return _Box(x, y, w, h)


def _node(ax: Axes, x: float, y: float, symbol: str = "+", kind: str = "sum") -> _Box:
    """A small circle (a sum, a product) with its symbol."""
    fill, edge, _ = _COLOURS[kind]
    ax.add_patch(Circle((x, y), 0.14, fc=fill, ec=edge, lw=1.1))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=10, weight="bold", color=_INK)
    return _Box(x, y, 0.28, 0.28)


def _arrow(ax: Axes, *points: tuple[float, float], dashed: bool = False,
           head: bool = True) -> None:
    """An arrow along `points` (two or more: elbows allowed), head at the last one; a
    plain line (a bracket) when `head` is false."""
    ax.add_patch(FancyArrowPatch(path=Path(points), arrowstyle="-|>" if head else "-",
                                 mutation_scale=9, lw=1.0, color=_INK,
                                 ls="--" if dashed else "-"))


def _note(ax: Axes, x: float, y: float, text: str, ha: str = "center", size: float = 8,
          colour: str = _MUTED, **kwargs) -> None:
    """A small annotation: a tensor shape, a caption, a remark."""
    ax.text(x, y, text, ha=ha, va="center", fontsize=size, color=colour, **kwargs)


def _chain(ax: Axes, boxes: list[_Box]) -> None:
    """Arrows from each box to the next one on its right."""
    for a, b in zip(boxes, boxes[1:]):
        _arrow(ax, a.right, b.left)


def _hw(size: tuple[int, int], stride: int) -> str:
    """The `h×w` of a map at `stride` (3x3 convs with padding 1 give ⌈n / stride⌉)."""
    return f"{-(-size[0] // stride)}×{-(-size[1] // stride)}"


def residual_blocks() -> Figure:
    """ResNet's two residual blocks side by side, with their shortcuts.

    BasicBlock (ResNet-18/34: two 3x3 convs, expansion 1) and Bottleneck (ResNet-50 and
    deeper: 1x1 reduce, 3x3, 1x1 expand to 4C, expansion 4), each with the shape after
    every layer and the shortcut that is added before the last ReLU: the identity, or a
    strided 1x1 projection when the shape changes. Why: the expansion decides the stage
    widths (the seeds' BasicBlock with expansion 4 is a bug) and the stride sits on a
    3x3 conv, the one that dilation later replaces.
    """
    fig, ax = _canvas(9.2, 5.7, "Residual blocks: out = ReLU(F(x) + shortcut(x))",
                      ["tensor", "conv", "sum", "act"])
    blocks = [
        ("BasicBlock (ResNet-18/34): expansion 1", 2.0, "C",
         ["3×3 conv, C, stride s\nBN, ReLU", "3×3 conv, C\nBN"], ["(C, H/s, W/s)"]),
        ("Bottleneck (ResNet-50/101/152): expansion 4", 6.5, "4C",
         ["1×1 conv, C\nBN, ReLU", "3×3 conv, C, stride s\nBN, ReLU", "1×1 conv, 4C\nBN"],
         ["(C, H, W)", "(C, H/s, W/s)"]),
    ]
    for title, x, out, convs, shapes in blocks:
        _note(ax, x + 0.35, 5.1, title, size=9.5, colour=_INK, weight="bold")
        prev = inp = _box(ax, x, 4.6, "x: (C_in, H, W)", "tensor", w=1.5, h=0.34)
        for i, text in enumerate(convs):
            box = _box(ax, x, 3.85 - 0.75 * i, text, "conv", w=1.7, h=0.5)
            _arrow(ax, prev.bottom, box.top)
            if 0 < i:
                _note(ax, x + 0.08, (prev.bottom[1] + box.top[1]) / 2, shapes[i - 1], ha="left")
            prev = box
        total = _node(ax, x, 1.65)
        _arrow(ax, prev.bottom, total.top)
        proj = _box(ax, x + 1.55, 3.1, f"1×1 conv, {out}\nstride s, BN", "conv", w=1.15,
                    dashed=True)
        _arrow(ax, inp.right, (proj.x, inp.y), proj.top)
        _arrow(ax, proj.bottom, (proj.x, total.y), total.right)
        _note(ax, proj.x + 0.08, 2.4, "shortcut", ha="left", style="italic")
        relu = _box(ax, x, 1.15, "ReLU", "act", w=0.7, h=0.3)
        _arrow(ax, total.bottom, relu.top)
        outb = _box(ax, x, 0.65, f"out: ({out}, H/s, W/s)", "tensor", w=1.6, h=0.34)
        _arrow(ax, relu.bottom, outb.top)
    _note(ax, 4.6, 0.2, "Shortcut: the identity when the shape is kept, else the dashed "
          "projection (first block of a stage).\nC = 64, 128, 256, 512 in layer1..layer4; "
          "s = 2 in the first block of layer2..layer4, else 1.", size=8)
    return fig


def dilation_and_output_stride(size: tuple[int, int] = _SIZE) -> Figure:
    """The four ResNet stages at output stride 32, 16 and 8, maps drawn to scale.

    One row per output stride: the stem (conv1 + max-pool, stride 4) and layer1..layer4
    with the stride or dilation of each stage and its feature map size for an input of
    `size` (default a 360x480 CamVid frame). Why: segmentation needs finer maps than
    classification; replacing the stride 2 of layer4 (OS 16) or of layer3 and layer4
    (OS 8, CCNet) by dilation 2 and 4 keeps 1/8 of the resolution with the same weights.
    """
    H, W = size
    fig, ax = _canvas(9.1, 5.6, "Output stride: stride 2 or dilation in layer3 and layer4",
                      ["tensor", "conv", "dilated"])
    stages = [("stem", "conv1 + max-pool", 4), ("layer1", "256 ch", 1), ("layer2", "512 ch", 2),
              ("layer3", "1024 ch", 2), ("layer4", "2048 ch", 2)]
    rows = [(32, "classification,\nRefineNet"), (16, "layer4 dilated"),
            (8, "CCNet: layer3\nand layer4 dilated")]
    scale = 0.9 / -(-W // 4)  # inches per pixel: the stem's map is 0.9 in wide
    for i, (name, channels, _) in enumerate(stages):
        _note(ax, 3.25 + 1.25 * i, 4.95, name, size=9, colour=_INK, weight="bold")
        _note(ax, 3.25 + 1.25 * i, 4.75, channels)
    for r, (os, text) in enumerate(rows):
        y = 4.0 - 1.35 * r
        _note(ax, 0.75, y + 0.15, f"OS {os}", size=10, colour=_INK, weight="bold")
        _note(ax, 0.75, y - 0.2, text)
        prev = _box(ax, 2.0, y, f"image\n{H}×{W}", "tensor", w=0.85, h=0.5)
        stride, dilation = 1, 1
        for i, (_, _, s) in enumerate(stages):
            if stride * s <= os:  # downsample as in classification
                stride, kind, label = stride * s, "conv", f"stride {s}"
            else:  # keep the size, spread the 3x3 taps instead
                dilation *= s
                kind, label = "dilated", f"dilation {dilation}"
            x = 3.25 + 1.25 * i
            h, w = -(-H // stride), -(-W // stride)
            box = _box(ax, x, y, "", kind, w=w * scale, h=h * scale)
            _arrow(ax, prev.right, box.left)
            _note(ax, x, y + 0.5, label, colour=_INK if kind == "dilated" else _MUTED)
            _note(ax, x, y - 0.5, f"{_hw(size, stride)}  (1/{stride})", size=8, colour=_INK)
            prev = box
    _note(ax, 4.55, 0.3, "Each stride 2 halves the map and rounds up, ceil(n / 2): "
          "ceil(23 / 2) = 12 rows in layer4 at OS 32. A dilated stage keeps the size"
          "\nand spaces its 3×3 taps d pixels apart: the receptive field grows as before and "
          "the weights keep their shape. Maps to scale; ResNet-50 channels.", size=8)
    return fig


def criss_cross_module() -> Figure:
    """The criss-cross attention module, as in the CCNet paper's Fig. 3.

    From a feature map H (C, H, W), 1x1 convs give queries Q and keys K with C' = C/8
    channels and values V with C; the affinity of each pixel u with the H+W-1 pixels of
    its row and column, normalised by a softmax, is the attention map A (H+W-1, H, W);
    aggregating V over the same cross, scaled by the learned gamma and added to H, gives
    H' (C, H, W). Why: it is the whole module on one page, with every tensor's shape.
    """
    fig, ax = _canvas(10.0, 4.7, "Criss-cross attention module (CCNet, Fig. 3)",
                      ["tensor", "conv", "attention", "sum"])
    _note(ax, 5.0, 4.15, r"$H'_u = \gamma \Sigma_i\, A_{i,u}\,\Phi_{i,u} + H_u$,   "
          r"$A_{\cdot,u} = \mathrm{softmax}_i\,(Q_u\,\Omega_{i,u}^{\top})$", size=10,
          colour=_INK)
    h = _box(ax, 0.6, 2.55, "H\n(C, H, W)", "tensor", w=0.9, h=0.9, size=9)
    tensors = {}
    for name, y, shape in [("Q", 3.55, "C'"), ("K", 2.55, "C'"), ("V", 1.45, "C")]:
        conv = _box(ax, 1.85, y, "1×1 conv", "conv", w=0.85, h=0.42)
        _arrow(ax, h.right, (1.25, h.y), (1.25, y), conv.left)
        tensors[name] = _box(ax, 3.05, y, f"{name}\n({shape}, H, W)", "tensor", w=0.95)
        _arrow(ax, conv.right, tensors[name].left)
    affinity = _box(ax, 4.45, 3.05, "Affinity\n" r"$d_{i,u} = Q_u\,\Omega_{i,u}^{\top}$",
                    "attention", w=1.15, h=0.6)
    for name, y in [("Q", 3.2), ("K", 2.9)]:
        start = tensors[name].right
        _arrow(ax, start, (3.7, start[1]), (3.7, y), (affinity.left[0], y))
    softmax = _box(ax, 5.8, 3.05, "softmax\nover H+W-1", "attention", w=1.0, h=0.6)
    a = _box(ax, 7.1, 3.05, "A\n(H+W-1, H, W)", "tensor", w=1.2, h=0.6)
    _chain(ax, [affinity, softmax, a])
    agg = _box(ax, 7.1, 1.45, "Aggregation\n" r"$\Sigma_i\, A_{i,u}\,\Phi_{i,u}$", "attention",
               w=1.2, h=0.6)
    _arrow(ax, a.bottom, agg.top)
    _arrow(ax, tensors["V"].right, agg.left)
    _note(ax, 5.0, 1.6, r"$\Phi_u$: V on u's row and column")
    gamma = _box(ax, 8.15, 1.45, "× γ", "sum", w=0.45, h=0.32, size=9)
    total = _node(ax, 8.8, 1.45)
    out = _box(ax, 9.5, 1.45, "H'\n(C, H, W)", "tensor", w=0.8, h=0.6, size=9)
    _chain(ax, [agg, gamma, total, out])
    _arrow(ax, h.bottom, (h.x, 0.75), (total.x, 0.75), total.bottom)
    _note(ax, 4.5, 0.87, "H (residual)")
    _note(ax, 5.0, 0.3, r"C' = C/8 keeps the affinity cheap. $\Omega_u$ and $\Phi_u$: the "
          "H+W-1 vectors of K and V on u's row and column (u counted once).\nγ is learned and "
          "starts at 0, so a new module starts as the identity.", size=8)
    return fig


def _grid(ax: Axes, x0: float, y0: float, centre: tuple[int, int],
          marks: dict[str, tuple[int, int]], hot: str) -> None:
    """A 7x7 pixel grid (bottom-left corner `(x0, y0)`) with the row and column of
    `centre` shaded, cells labelled by `marks`, and the `hot` one filled dark."""
    cell, (fill, edge, _) = _CELL, _COLOURS["attention"]
    for r in range(7):
        for c in range(7):
            on_cross = centre[0] == r or centre[1] == c
            ax.add_patch(FancyBboxPatch((x0 + c * cell, y0 + (6 - r) * cell), cell, cell,
                                        "square,pad=0", fc=fill if on_cross else "white",
                                        ec="#b0b0b0", lw=0.6))
    for name, (r, c) in marks.items():
        x, y = x0 + (c + 0.5) * cell, y0 + (6.5 - r) * cell
        ax.add_patch(FancyBboxPatch((x - cell / 2, y - cell / 2), cell, cell, "square,pad=0",
                                    fc=edge if name == hot else fill, ec=edge, lw=1.4))
        ax.text(x, y, name, ha="center", va="center", fontsize=9, weight="bold",
                color="white" if name == hot else _INK)


def _cell(x0: float, y0: float, rc: tuple[int, int], towards: tuple[int, int]
          ) -> tuple[float, float]:
    """The edge midpoint of grid cell `rc` that faces cell `towards` (same row or column)."""
    dr, dc = towards[0] - rc[0], towards[1] - rc[1]
    x = x0 + _CELL * (rc[1] + 0.5 + 0.5 * (dc > 0) - 0.5 * (dc < 0))
    y = y0 + _CELL * (6.5 - rc[0] - 0.5 * (dr > 0) + 0.5 * (dr < 0))
    return (x, y)


def rcca_path() -> Figure:
    """Why two criss-cross passes reach every pixel, and the RCCA head that applies them.

    Top: a pixel z and a far pixel u on a 7x7 grid. In pass 1 the pixels h (z's row,
    u's column) and v (u's row, z's column) take in z's features; in pass 2 u reads its
    own row and column, which contain h and v, so z reaches u. Bottom: the RCCA head of
    CCNet, reduce conv -> the same CCA R times -> conv -> concat with the input ->
    bottleneck -> classifier, with the shapes for ResNet-50 features. Why: R = 2 gives
    full-image context at criss-cross cost, with no extra weights.
    """
    fig, ax = _canvas(9.6, 5.0, "Recurrent criss-cross attention (RCCA): two passes, one module",
                      ["tensor", "conv", "attention", "sum"])
    z, u = (1, 1), (5, 5)
    marks = {"z": z, "u": u, "h": (z[0], u[1]), "v": (u[0], z[1])}
    for x0, centre, hot, title in [(0.5, z, "z", "pass 1: z → h and v (its row and column)"),
                                   (3.5, u, "u", "pass 2: h and v → u")]:
        _grid(ax, x0, 2.35, centre, marks, hot)
        hv = [marks["h"], marks["v"]]
        for a, b in [(z, p) for p in hv] if hot == "z" else [(p, u) for p in hv]:
            _arrow(ax, _cell(x0, 2.35, a, b), _cell(x0, 2.35, b, a))
        _note(ax, x0 + 0.91, 4.4, title, size=8.5, colour=_INK)
    _arrow(ax, (2.45, 3.26), (3.35, 3.26))
    _note(ax, 2.9, 3.45, "same CCA")
    _note(ax, 5.65, 3.3, "Pass 1: h and v are on z's row or column, so\n"
          "CCA mixes z's features into them.\n"
          "Pass 2: h and v are on u's row and column, so\n"
          "u takes in z through them.\n"
          "Any z, any u: after R = 2 every pixel has context\n"
          "from the whole image, at O((H+W)·HW) cost\n"
          "instead of O((HW)²) for dense attention.", ha="left", size=8.5,
          colour=_INK, linespacing=1.5)
    chain = [("X\n(2048, h, w)", "tensor", ""), ("reduce\n3×3 conv", "conv", "(512, h, w)"),
             ("CCA", "attention", "(512, h, w)"), ("CCA", "attention", "(512, h, w)"),
             ("3×3 conv", "conv", "(512, h, w)"), ("concat\n[X, ·]", "sum", "(2560, h, w)"),
             ("bottleneck\n3×3 conv", "conv", "(512, h, w)"),
             ("classifier\n1×1 conv", "conv", "(K, h, w)")]
    boxes = []
    for i, (text, kind, shape) in enumerate(chain):
        boxes.append(_box(ax, 0.65 + 1.16 * i, 1.05, text, kind, w=0.95))
        _note(ax, boxes[-1].x, 0.6, shape)
    _chain(ax, boxes)
    x, concat = boxes[0], boxes[5]
    _arrow(ax, x.top, (x.x, 1.8), (concat.x, 1.8), concat.top)
    cca1, cca2 = boxes[2], boxes[3]
    _arrow(ax, cca1.top, (cca1.x, 1.45), (cca2.x, 1.45), cca2.top, head=False)
    _note(ax, (cca1.x + cca2.x) / 2, 1.58, "R = 2 passes of ONE module (shared weights)",
          colour=_INK)
    _note(ax, 4.8, 0.2, "h×w = H/8×W/8 (45×60 for a 360×480 frame): CCNet's backbone runs "
          "at output stride 8.", size=8)
    return fig


def ccnet_overview() -> Figure:
    """The whole CCNet, from image to class scores, with the auxiliary head.

    A dilated ResNet (output stride 8) turns a 360x480 image into 45x60 maps; the RCCA
    head on layer4 (reduce, CCA twice with shared weights, conv, concat with layer4,
    bottleneck, classifier) gives K class scores, upsampled bilinearly to the input's
    exact size. In training an FCN head on layer3 adds a second loss with weight 0.4.
    Why: where each part sits and the shape of every tensor between them.
    """
    fig, ax = _canvas(10.0, 4.75, "CCNet: dilated ResNet (output stride 8) + RCCA head",
                      ["tensor", "conv", "dilated", "attention", "sum", "resize"])
    (H, W), hw = _SIZE, _hw(_SIZE, 8)
    backbone = [(f"image\n(3, {H}, {W})", "tensor"),
                (f"stem + layer1\n(256, {_hw(_SIZE, 4)})", "conv"),
                (f"layer2\n(512, {hw})", "conv"), (f"layer3, dil. 2\n(1024, {hw})", "dilated"),
                (f"layer4, dil. 4\n(2048, {hw})", "dilated")]
    stages = [_box(ax, 0.8, 0.4 + 0.8 * i, text, kind, w=1.25) for i, (text, kind) in
              enumerate(backbone)]
    for lower, upper in zip(stages, stages[1:]):
        _arrow(ax, lower.top, upper.bottom)
    layer3, layer4 = stages[3], stages[4]
    main = [(f"reduce\n3×3 conv\n(512, {hw})", "conv"),
            (f"CCA × 2\nshared\n(512, {hw})", "attention"),
            (f"3×3 conv\n(512, {hw})", "conv"),
            (f"concat\nwith layer4\n(2560, {hw})", "sum"),
            (f"bottleneck\n3×3 conv\n(512, {hw})", "conv"),
            (f"classifier\n1×1 conv\n(K, {hw})", "conv"),
            ("bilinear\nupsample", "resize"), (f"(K, {H}, {W})\nscores", "tensor")]
    aux = [(f"FCN head\n3×3 conv\n(512, {hw})", "conv"),
           (f"dropout\n1×1 conv\n(K, {hw})", "conv"),
           ("bilinear\nupsample", "resize"), (f"(K, {H}, {W})\naux scores", "tensor")]
    for row, src, loss, dy in [(main, layer4, "loss × 1", 0.44),
                               (aux, layer3, "loss × 0.4", -0.44)]:
        boxes = [src] + [_box(ax, 2.15 + 1.0 * i, src.y, text, kind, w=0.92, h=0.62, size=8)
                         for i, (text, kind) in enumerate(row)]
        _chain(ax, boxes)
        _note(ax, boxes[-1].x, src.y + dy, loss, colour=_INK)
    concat = 2.15 + 1.0 * 3
    _arrow(ax, (layer4.x + 0.3, layer4.top[1]), (layer4.x + 0.3, 4.15), (concat, 4.15),
           (concat, layer4.y + 0.31))
    _note(ax, 6.55, layer3.y, "← auxiliary FCN head on layer3,\n    used in training only",
          ha="left", size=8, colour=_INK)
    _note(ax, 2.0, 1.15, "Loss = CE(scores, labels) + 0.4 · CE(aux scores, labels), "
          "ignoring void.\n"
          "Scores are resized to the input's exact size (bilinear), never by a fixed\n"
          f"factor: {H}×{W} / 8 = {hw}. The same CCA runs twice (R = 2): every pixel\n"
          "then has context from the whole image.", ha="left", size=8.5, colour=_INK,
          linespacing=1.45)
    return fig


def refinenet_block() -> Figure:
    """One RefineNet block fusing two resolutions, with its RCU and CRP units opened up.

    Top: a backbone feature (256, h, w) and the coarser block's output (256, h/2, w/2)
    each pass two RCUs (adaptive convs); MRF convolves each path, upsamples the coarse
    one to the exact (h, w) and sums; CRP gathers context with chained 5x5 max-pools;
    one more RCU is the output conv. Bottom: inside an RCU and a CRP. Why: every piece
    is a residual unit, so gradients reach the backbone through short paths.
    """
    fig, ax = _canvas(10.0, 5.2, "RefineNet block: RCU → MRF → CRP → RCU",
                      ["tensor", "conv", "pool", "sum", "resize", "act"])
    for x, w, label in [(2.35, 1.25, "adaptive conv"), (4.75, 3.0, "multi-resolution fusion (MRF)"),
                        (7.05, 1.1, "chained residual\npooling (CRP)"), (8.35, 0.9, "output conv")]:
        _box(ax, x, 3.575, "", "group", w=w, h=1.95, dashed=True)
        _note(ax, x, 4.3 if "\n" in label else 4.4, label, colour=_INK)
    paths = [(4.0, "backbone feature\n(256, h, w)", False),
             (3.0, "coarser block\n(256, h/2, w/2)", True)]
    total = _node(ax, 5.85, 3.5)
    for y, text, coarse in paths:
        src = _box(ax, 0.8, y, text, "tensor", w=1.3, h=0.5, size=8)
        rcu = _box(ax, 2.35, y, "RCU × 2", "conv", w=0.95, h=0.42)
        conv = _box(ax, 3.7, y, "3×3 conv", "conv", w=0.85, h=0.42)
        _chain(ax, [src, rcu, conv])
        if coarse:
            up = _box(ax, 4.95, y, "upsample\nto (h, w)", "resize", w=0.95, h=0.5)
            _chain(ax, [conv, up])
            _arrow(ax, up.right, (total.x, y), total.bottom)
        else:
            _arrow(ax, conv.right, (total.x, y), total.top)
    crp = _box(ax, 7.05, 3.5, "CRP", "pool", w=0.75, h=0.42)
    out_rcu = _box(ax, 8.35, 3.5, "RCU", "conv", w=0.7, h=0.42)
    out = _box(ax, 9.45, 3.5, "(256, h, w)", "tensor", w=0.9, h=0.42, size=8)
    _chain(ax, [total, crp, out_rcu, out])
    # Inside an RCU: x + conv(ReLU(conv(ReLU(x))))
    _note(ax, 2.3, 2.15, "RCU: residual conv unit (no BN, same shape out)", size=8.5,
          colour=_INK)
    rcu = [_box(ax, 0.4, 1.2, "x", "tensor", w=0.4, h=0.36)]
    for i, (text, kind) in enumerate([("ReLU", "act"), ("3×3 conv", "conv"), ("ReLU", "act"),
                                      ("3×3 conv", "conv")]):
        rcu.append(_box(ax, 1.1 + 0.75 * i, 1.2, text, kind, w=0.68 if kind == "conv" else 0.5,
                        h=0.36, size=8))
    rcu.append(_node(ax, 4.05, 1.2))
    _chain(ax, rcu)
    _arrow(ax, rcu[0].top, (0.4, 1.75), (4.05, 1.75), rcu[-1].top)
    _arrow(ax, rcu[-1].right, (4.55, 1.2))
    # Inside a CRP: ReLU, then chained (5x5 max-pool, 3x3 conv) blocks summed into the path
    _note(ax, 7.45, 2.15, "CRP: chained residual pooling", size=8.5, colour=_INK)
    relu = _box(ax, 5.3, 1.55, "ReLU", "act", w=0.5, h=0.34, size=8)
    sums, prev = [], (5.75, 1.55)
    _arrow(ax, relu.right, (5.75, 1.55), (5.75, 0.75), (5.9, 0.75))
    for i in range(2):
        pool = _box(ax, 6.3 + 1.85 * i, 0.75, "max-pool\n5×5", "pool", w=0.8, h=0.42, size=8)
        conv = _box(ax, 7.2 + 1.85 * i, 0.75, "3×3 conv", "conv", w=0.7, h=0.36, size=8)
        sums.append(_node(ax, conv.x, 1.55))
        _chain(ax, [pool, conv])
        _arrow(ax, conv.top, sums[-1].bottom)
        _arrow(ax, prev, sums[-1].left)
        prev = sums[-1].right
        if i == 0:
            _arrow(ax, conv.right, (pool.x + 1.45, 0.75))
    _arrow(ax, prev, (9.65, 1.55))
    _note(ax, 7.3, 0.3, "2 of N pool-conv blocks drawn: N = 4 here (paper: 2). Pools keep the "
          "size (stride 1);\nblock n sees a (4n+1)² window.", size=8)
    return fig


def refinenet_cascade() -> Figure:
    """The 4-cascade RefineNet on a ResNet at output stride 32.

    layer1..layer4 (1/4 .. 1/32 of the input) are adapted by a 3x3 conv to 256 channels
    (layer4: 512) and fed to RefineNet-1..4: RefineNet-4 refines layer4 alone, each
    other block fuses its stage with the output of the block below. After RefineNet-1
    (1/4), two RCUs and a 1x1 classifier give the logits at 1/4, which are upsampled
    bilinearly to the input's exact size; the softmax comes after (in the loss, or an
    argmax for the prediction), as in seglib's `RefineNet.forward` and torchvision's
    segmentation models (the paper's Fig. 2 draws the softmax at 1/4, before the
    upsampling). Why: coarse semantics climb back to fine resolution without dilating
    the backbone.
    """
    fig, ax = _canvas(9.6, 4.8, "RefineNet: 4-cascade on a ResNet at output stride 32",
                      ["tensor", "conv", "refine", "resize"])
    H, W = _SIZE
    prev = _box(ax, 1.1, 3.95, f"image\n(3, {H}, {W})", "tensor", w=1.3)
    chain = []
    for i, (channels, stride) in enumerate([(256, 4), (512, 8), (1024, 16), (2048, 32)]):
        y = 3.1 - 0.85 * i
        layer = _box(ax, 1.1, y, f"layer{i + 1}\n1/{stride}, {channels} ch", "conv", w=1.3)
        _arrow(ax, prev.bottom, layer.top)
        width = 512 if i == 3 else 256
        adapt = _box(ax, 2.75, y, f"3×3 conv\n→ {width}", "conv", w=0.8, size=8)
        block = _box(ax, 4.45, y, f"RefineNet-{i + 1}\n({256 if i < 3 else 512}, "
                     f"{_hw(_SIZE, stride)})", "refine", w=1.45)
        _chain(ax, [layer, adapt, block])
        chain.append(block)
        prev = layer
    for lower, upper in zip(chain[1:], chain[:-1]):
        _arrow(ax, lower.top, upper.bottom)
    rcus = _box(ax, 6.0, 3.1, "RCU × 2", "conv", w=0.8)
    cls = _box(ax, 7.15, 3.1, "1×1 conv\n→ logits", "conv", w=0.95)
    up = _box(ax, 8.45, 3.1, "bilinear\nupsample", "resize", w=0.95)
    _chain(ax, [chain[0], rcus, cls, up])
    _note(ax, cls.x, 3.52, f"(K, {_hw(_SIZE, 4)})  at 1/4")
    out = _box(ax, 8.45, 2.2, f"logits\n(K, {H}, {W})", "tensor", w=1.05, h=0.5)
    _arrow(ax, up.bottom, out.top)
    _note(ax, 8.45, 1.65, "softmax (in the loss,\nor argmax) after upsampling", size=7.5)
    _note(ax, 5.55, 1.1, "Each RefineNet-n: RCU × 2 per input → MRF → CRP → RCU\n"
          "(see refinenet_block). RefineNet-4 has one input, the\n"
          "others fuse their stage with the coarser output below.\n"
          "Features 256; the top path (layer4, RefineNet-4) 512.\n"
          "No dilation: the cascade climbs from 1/32 back to 1/4.", ha="left", size=8,
          colour=_INK, linespacing=1.45)
    return fig
