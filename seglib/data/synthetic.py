r"""
# Synthetic street scenes: CamVid's classes without the download

A procedural stand-in for CamVid, so that every notebook runs before any data is
downloaded. Each scene is painted back to front like a street photograph taken from a
car: a sky gradient, a row of buildings with windows, the road in perspective with lane
markings, pavement on both sides, then trees, fences, poles with signs, cars,
pedestrians and bicyclists, placed by depth and scaled by the perspective rule

$$s(y) \propto \frac{y - y_{\text{horizon}}}{H - y_{\text{horizon}}}$$

(things lower in the picture are closer, hence larger). Every shape is painted into the
image and the label map with the *same* boolean mask, so the labels match the pixels
exactly; texture noise and lighting are applied afterwards, pixel by pixel.

Every item is a pure function of `(seed, split, index)` through numpy's PCG64 generator
and only `+ - * /` and comparisons (no transcendental functions, no float reductions),
so the bytes are identical on every machine. Notebooks `05_camvid_data.ipynb` and
`06_training.ipynb` use it when CamVid is not on disk.
"""

from __future__ import annotations

import numpy as np

from seglib.data.classes import CLASSES, NUM_CLASSES, PALETTE
from seglib.data.dataset import SegmentationDataset
from seglib.data.transforms import eval_transform, train_transform

__all__ = ["SyntheticStreets", "render_scene"]

SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
_SPLITS = {"train": 0, "val": 1, "test": 2}  # separate seed streams per split

# base colours (RGB) of the painted scene; the palette in camvid.py is for label display
# Each class has its own colour family so that a small network can learn it quickly;
# texture, lighting and shapes keep it from being a colour lookup.
_BUILDINGS = [(165, 72, 55), (212, 186, 122), (196, 112, 74), (128, 88, 62)]
_CARS = [(190, 30, 35), (40, 62, 170), (222, 182, 30), (24, 128, 136)]
_SHIRTS = [(120, 70, 160), (122, 30, 52), (30, 96, 108), (150, 60, 120)]
_SKIN = [(228, 184, 152), (170, 118, 86), (112, 76, 52)]
_JACKETS = [(0, 170, 215), (175, 235, 40), (250, 110, 20)]
_FENCES = [(226, 222, 210), (150, 166, 190)]
_SIGNS = [((205, 30, 30), (245, 245, 245)), ((30, 72, 190), (245, 245, 245)),
          ((235, 195, 30), (20, 20, 20))]
# texture strength per class (fine noise amplitude, coarse blotch amplitude)
_FINE = np.array([2, 5, 3, 5, 5, 7, 2, 4, 3, 3, 3], dtype=np.float32)
_COARSE = np.array([5, 8, 3, 8, 8, 18, 3, 6, 4, 5, 5], dtype=np.float32)


class _Canvas:
    """Label map + float RGB image painted together through the same masks."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.label = np.full((h, w), SKY, dtype=np.uint8)
        self.rgb = np.zeros((h, w, 3), dtype=np.float32)

    def box(self, y0: float, y1: float, x0: float, x1: float):
        """Clip a box; return (slices, ys (h', 1), xs (1, w')) of pixel centres, or None."""
        iy0, iy1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), self.h)
        ix0, ix1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), self.w)
        if iy0 >= iy1 or ix0 >= ix1:
            return None
        ys = np.arange(iy0, iy1, dtype=np.float64)[:, None] + 0.5
        xs = np.arange(ix0, ix1, dtype=np.float64)[None, :] + 0.5
        return (slice(iy0, iy1), slice(ix0, ix1)), ys, xs

    def paint(self, sl, mask: np.ndarray, cls: int | None, colour) -> None:
        """Set class `cls` (None: image only) and `colour` where `mask` is True."""
        if cls is not None:
            self.label[sl][mask] = cls
        colour = np.asarray(colour, dtype=np.float32)
        self.rgb[sl][mask] = colour[mask] if colour.ndim == 3 else colour

    def rect(self, y0, y1, x0, x1, cls, colour) -> None:
        b = self.box(y0, y1, x0, x1)
        if b is not None:
            sl, ys, xs = b
            self.paint(sl, (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1), cls, colour)

    def ellipse(self, cy, cx, ry, rx, cls, colour) -> None:
        b = self.box(cy - ry, cy + ry, cx - rx, cx + rx)
        if b is not None:
            sl, ys, xs = b
            dy, dx = (ys - cy) / ry, (xs - cx) / rx
            self.paint(sl, dy * dy + dx * dx <= 1.0, cls, colour)

    def triangle(self, top, bottom, cx, half, cls, colour) -> None:
        b = self.box(top, bottom, cx - half, cx + half)
        if b is not None:
            sl, ys, xs = b
            self.paint(sl, np.abs(xs - cx) <= (ys - top) / (bottom - top) * half, cls, colour)


def _jitter(rng: np.random.Generator, colour, amount: float = 0.12) -> np.ndarray:
    """A colour scaled by a random factor per channel (object-to-object variation)."""
    return np.asarray(colour, dtype=np.float64) * (1.0 + amount * (2 * rng.random(3) - 1))


def _pick(rng: np.random.Generator, choices):
    return choices[int(rng.integers(len(choices)))]


def _sky_and_buildings(cv: _Canvas, rng, horizon: float) -> None:
    h, w = cv.h, cv.w
    t = (np.arange(h, dtype=np.float32)[:, None, None] + 0.5) / max(horizon, 1.0)
    top, low = _jitter(rng, (70, 130, 205), 0.1), _jitter(rng, (190, 212, 236), 0.05)
    cv.rgb[:] = top + (low - top) * np.minimum(t, 1.0)  # vertical sky gradient
    for _ in range(int(rng.integers(1, 4))):  # soft clouds, still sky
        cy, cx = horizon * rng.uniform(0.1, 0.6), rng.uniform(0, w)
        ry, rx = h * rng.uniform(0.04, 0.08), w * rng.uniform(0.08, 0.2)
        cv.ellipse(cy, cx, ry, rx, None, _jitter(rng, (232, 236, 242), 0.03))
    x = -rng.uniform(0, 0.1) * w
    while x < w:  # a row of façades of random width and height, windows in a grid
        bw = w * rng.uniform(0.18, 0.38)
        top_y = horizon - h * rng.uniform(0.12, 0.4)
        wall = _jitter(rng, _pick(rng, _BUILDINGS), 0.08)
        cv.rect(top_y, horizon + 1, x, x + bw, BUILDING, wall)
        cell_w, cell_h = w * rng.uniform(0.05, 0.08), h * rng.uniform(0.07, 0.1)
        glass = _jitter(rng, (52, 64, 84), 0.15)
        cols, rows = int(bw // cell_w), int((horizon - top_y) // cell_h)
        for r in range(rows):
            for c in range(cols):
                y0, x0 = top_y + (r + 0.3) * cell_h, x + (c + 0.25) * cell_w
                cv.rect(y0, y0 + 0.5 * cell_h, x0, x0 + 0.5 * cell_w, None, glass)
        x += bw


def _ground(cv: _Canvas, rng, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Pavement wedges and the road trapezoid; returns the road edges per row."""
    h, w = cv.h, cv.w
    rows = slice(int(np.ceil(horizon - 0.5)), h)
    ys = np.arange(h, dtype=np.float64)[rows, None] + 0.5
    xs = np.arange(w, dtype=np.float64)[None, :] + 0.5
    d = (ys - horizon) / (h - horizon)  # 0 at the horizon, 1 at the bottom row
    vx, top_w = w * rng.uniform(0.4, 0.6), w * rng.uniform(0.06, 0.14)
    bx, bot_w = w * rng.uniform(0.42, 0.58), w * rng.uniform(0.75, 1.05)
    left = vx - top_w / 2 + d * (bx - bot_w / 2 - vx + top_w / 2)  # (h', 1)
    right = vx + top_w / 2 + d * (bx + bot_w / 2 - vx - top_w / 2)
    pave = _jitter(rng, (178, 164, 152), 0.06)
    tiles = ((np.floor(xs / 6 + 40 * d) + np.floor(1.0 / (d + 0.08))) % 2 == 0)[..., None]
    cv.paint((rows, slice(None)), np.ones((ys.shape[0], w), bool), PAVEMENT,
             np.where(tiles, pave, pave * 0.88))
    road = (xs >= left) & (xs < right)
    asphalt = _jitter(rng, (86, 86, 92), 0.08)
    lane = d * w * 0.012 + 0.4
    dash = np.floor(3.0 / (d + 0.05)) % 2 == 0  # dashes shrink towards the horizon
    centre = (np.abs(xs - (left + right) / 2) < lane) & dash
    edges = (np.abs(xs - left - 2 * lane) < lane) | (np.abs(xs - right + 2 * lane) < lane)
    colour = np.where((centre | edges)[..., None] & road[..., None], (232, 232, 222), asphalt)
    cv.paint((rows, slice(None)), road, ROAD, colour)
    full_left = np.full(h, np.nan)
    full_right = np.full(h, np.nan)
    full_left[rows], full_right[rows] = left[:, 0], right[:, 0]
    return full_left, full_right


def _tree(cv, rng, xb, yb, s):
    trunk = _jitter(rng, (92, 66, 42), 0.1)
    cv.rect(yb - 24 * s, yb, xb - 2.8 * s, xb + 2.8 * s, TREE, trunk)
    leaf = _jitter(rng, _pick(rng, [(58, 118, 40), (40, 96, 36), (86, 138, 50)]), 0.08)
    for _ in range(3):
        cy, cx = yb - s * rng.uniform(28, 38), xb + s * rng.uniform(-9, 9)
        ry, rx = s * rng.uniform(11, 16), s * rng.uniform(11, 16)
        cv.ellipse(cy, cx, ry, rx, TREE, _jitter(rng, leaf, 0.06))


def _fence(cv, rng, x0, x1, horizon, s):
    top, bottom = horizon - 13 * s, horizon + 3 * s
    paint = _jitter(rng, _pick(rng, _FENCES), 0.05)
    cv.rect(top, bottom, x0, x1, FENCE, paint * 0.45)  # dark gaps between slats
    step = max(4.0, 5 * s)
    for x in np.arange(x0, x1, step):
        cv.rect(top, bottom, x, x + 0.6 * step, FENCE, paint)
    cv.rect(top + 2 * s, top + 4.5 * s, x0, x1, FENCE, paint * 0.9)  # rail


def _pole(cv, rng, xb, yb, s, sign: bool):
    u = cv.h / 96.0
    half = max(4.0 * u, 4.5 * s)  # thick enough to survive an output stride of 8
    r = max(8.0 * u, 11.0 * s)  # sign radius
    height = max(min(62 * s, yb - 2 * r - 2 * u), 12 * u) if sign else 62 * s  # sign in view
    metal = _jitter(rng, (196, 199, 206), 0.05)
    cv.rect(yb - height, yb, xb - half, xb + half, POLE, metal)
    cv.rect(yb - height, yb, xb + half / 3, xb + half, POLE, metal * 0.7)  # shaded side
    if not sign:
        return
    face, symbol = (np.asarray(c, dtype=np.float64) for c in _pick(rng, _SIGNS))
    rim = (242, 242, 242)  # white border, as on real signs
    cy = yb - height + r
    shape = int(rng.integers(3))
    if shape == 0:
        cv.ellipse(cy, xb, r, r, SIGN, rim)
        cv.ellipse(cy, xb, 0.8 * r, 0.8 * r, SIGN, face)
        cv.rect(cy - 0.15 * r, cy + 0.15 * r, xb - 0.5 * r, xb + 0.5 * r, SIGN, symbol)
    elif shape == 1:
        cv.rect(cy - r, cy + r, xb - r, xb + r, SIGN, rim)
        cv.rect(cy - 0.8 * r, cy + 0.8 * r, xb - 0.8 * r, xb + 0.8 * r, SIGN, face)
        cv.rect(cy - 0.5 * r, cy + 0.5 * r, xb - 0.2 * r, xb + 0.2 * r, SIGN, symbol)
    else:
        cv.triangle(cy - r, cy + r, xb, 1.15 * r, SIGN, rim)
        cv.triangle(cy - 0.5 * r, cy + 0.8 * r, xb, 0.75 * r, SIGN, face)
        cv.triangle(cy - 0.1 * r, cy + 0.6 * r, xb, 0.3 * r, SIGN, symbol)


def _car(cv, rng, xb, yb, s):
    body = _jitter(rng, _pick(rng, _CARS), 0.06)
    half, height = 20 * s, 17 * s
    shadow = cv.box(yb - 2 * s, yb + 2 * s, xb - half, xb + half)
    if shadow is not None:  # darker road under the car (image only)
        cv.rgb[shadow[0]] *= 0.6
    cv.rect(yb - 0.6 * height, yb - 0.15 * height, xb - half, xb + half, CAR, body)
    cv.rect(yb - height, yb - 0.55 * height, xb - 0.7 * half, xb + 0.7 * half, CAR, body * 0.95)
    glass = _jitter(rng, (58, 78, 100), 0.1)
    cv.rect(yb - 0.92 * height, yb - 0.6 * height, xb - 0.6 * half, xb + 0.6 * half, CAR, glass)
    for dx in (-0.65, 0.65):
        cv.ellipse(yb - 0.2 * height, xb + dx * half, 0.2 * height, 0.22 * half, CAR, (24, 24, 26))
    lamp = (250, 230, 150)
    cv.rect(yb - 0.5 * height, yb - 0.38 * height, xb - half, xb - 0.85 * half, CAR, lamp)


def _person(cv, rng, xb, yb, s, cls, shirt):
    cv.rect(yb - 12 * s, yb, xb - 3.2 * s, xb + 3.2 * s, cls, _jitter(rng, (44, 44, 66), 0.15))
    cv.rect(yb - 12 * s, yb, xb - 0.3 * s, xb + 0.3 * s, cls, (28, 28, 40))  # between the legs
    cv.rect(yb - 24 * s, yb - 11 * s, xb - 4.2 * s, xb + 4.2 * s, cls, shirt)
    cv.ellipse(yb - 27.5 * s, xb, 3.8 * s, 3.4 * s, cls, _jitter(rng, _pick(rng, _SKIN), 0.05))


def _bicyclist(cv, rng, xb, yb, s):
    for dx in (-8.5, 8.5):
        cv.ellipse(yb - 6 * s, xb + dx * s, 6 * s, 6 * s, BICYCLIST, (28, 28, 30))
        cv.ellipse(yb - 6 * s, xb + dx * s, 3.2 * s, 3.2 * s, BICYCLIST, (120, 120, 126))
    frame = _jitter(rng, (200, 30, 40), 0.1)
    cv.rect(yb - 9 * s, yb - 6.5 * s, xb - 8.5 * s, xb + 8.5 * s, BICYCLIST, frame)
    jacket = _jitter(rng, _pick(rng, _JACKETS), 0.05)
    cv.rect(yb - 16 * s, yb - 8 * s, xb - 2.5 * s, xb + 1.5 * s, BICYCLIST, (44, 44, 66))  # legs
    cv.rect(yb - 26 * s, yb - 15 * s, xb - 4 * s, xb + 3.5 * s, BICYCLIST, jacket)
    cv.ellipse(yb - 29 * s, xb, 3.6 * s, 3.4 * s, BICYCLIST, (250, 250, 250))  # helmet


def render_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Paint one street scene: uint8 image (H, W, 3) and uint8 label map (H, W) in 0..10."""
    h, w = size
    cv = _Canvas(h, w)
    u = h / 96.0  # sizes below are in pixels of a 96-row image
    horizon = h * rng.uniform(0.36, 0.48)
    _sky_and_buildings(cv, rng, horizon)
    if rng.random() < 0.85:  # a fence in front of the buildings on one side
        x0 = w * rng.uniform(0.0, 0.5)
        _fence(cv, rng, x0, x0 + w * rng.uniform(0.3, 0.5), horizon, u)
    left, right = _ground(cv, rng, horizon)

    def spot(lo: float, hi: float, where: str) -> tuple[float, float, float]:
        """A ground point (x, y) at depth in [lo, hi] on the pavement, road or its edge."""
        y = horizon + (h - horizon) * rng.uniform(lo, hi)
        r = min(int(y), h - 1)
        if where == "road":  # cars keep to the middle of the road
            x = left[r] + (right[r] - left[r]) * rng.uniform(0.28, 0.72)
        elif where == "edge":  # bicyclists ride near the kerb
            side = _pick(rng, [0.14, 0.86])
            x = left[r] + (right[r] - left[r]) * side + 4 * u * rng.uniform(-1, 1)
        elif rng.random() < 0.5:  # left pavement
            x = max(left[r], 10 * u) * rng.uniform(0.2, 0.8)
        else:
            x = right[r] + (max(w - right[r], 10 * u)) * rng.uniform(0.2, 0.8)
        return float(x), float(y), float(u * (0.65 + 0.85 * (y - horizon) / (h - horizon)))

    things = []  # (depth y, painter)
    for _ in range(int(rng.integers(1, 3))):
        x, y, s = spot(0.05, 0.35, "pavement")
        things.append((y, lambda x=x, y=y, s=s: _tree(cv, rng, x, y, s)))
    signs = [True] + [bool(rng.random() < 0.5) for _ in range(int(rng.integers(0, 2)))]
    for sign in signs + [False]:
        x, y, s = spot(0.1, 0.6, "pavement")
        things.append((y, lambda x=x, y=y, s=s, g=sign: _pole(cv, rng, x, y, s, g)))
    for _ in range(int(rng.integers(1, 3))):
        x, y, s = spot(0.2, 0.9, "road")
        things.append((y, lambda x=x, y=y, s=s: _car(cv, rng, x, y, s)))
    for _ in range(int(rng.integers(1, 3))):
        x, y, s = spot(0.3, 0.95, "pavement")
        shirt = _jitter(rng, _pick(rng, _SHIRTS), 0.08)
        things.append((y, lambda x=x, y=y, s=1.35 * s, c=shirt:
                       _person(cv, rng, x, y, s, PEDESTRIAN, c)))
    x, y, s = spot(0.3, 0.95, "edge")
    things.append((y, lambda x=x, y=y, s=s: _bicyclist(cv, rng, x, y, 1.2 * s)))
    for _, draw in sorted(things, key=lambda t: t[0]):  # far to near
        draw()

    # texture: fine grain + coarse blotches, both scaled per class
    fine = rng.integers(-8, 9, size=(h, w, 1)).astype(np.float32) / 8
    coarse = rng.random((h // 4 + 1, w // 4 + 1)).astype(np.float32) * 2 - 1
    coarse = np.repeat(np.repeat(coarse, 4, 0), 4, 1)[:h, :w, None]
    img = cv.rgb + fine * _FINE[cv.label][..., None] + coarse * _COARSE[cv.label][..., None]
    # lighting: brightness, colour temperature and a sideways light ramp
    ramp = 1.0 + rng.uniform(-0.2, 0.2) * ((np.arange(w, dtype=np.float32) + 0.5) / w - 0.5)
    gain = rng.uniform(0.8, 1.15) * (1.0 + rng.uniform(-0.05, 0.05, 3))
    img = img * ramp[None, :, None] * gain.astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), cv.label.copy()


class SyntheticStreets(SegmentationDataset):
    """`n` procedural street scenes with CamVid's 11 classes; same items as `CamVid`.

    Args:
        n: number of scenes.
        size: `(h, w)` of every scene (default 96x128, a quarter of CamVid's 360x480).
        seed: base seed; scene `i` of a split is a function of `(seed, split, i)` only.
        split: "train", "val" or "test"; each has its own seed stream.
        transform: Albumentations-style pipeline; `None` picks a random horizontal flip
            (`train_transform(crop=size, scale=(1, 1), jitter=False)`: the scenes already
            vary in layout, scale and lighting, and a short CPU run learns faster without
            more) for "train", else `eval_transform()`.

    Items: image float32 (3, h, w) ImageNet-normalised, mask int64 (h, w) in 0..10.
    Scenes are rendered on first access and cached in memory (uint8).
    """

    def __init__(
        self,
        n: int,
        size: tuple[int, int] = (96, 128),
        seed: int = 0,
        split: str = "train",
        transform=None,
    ):
        if int(n) < 1:
            raise ValueError(f"n must be >= 1 scenes, got {n}")
        try:
            h, w = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be (h, w), got {size!r}") from None
        if h < 32 or w < 32:
            raise ValueError(f"size must be at least (32, 32), got {size!r}")
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
        self.n, self.size, self.seed, self.split = int(n), (h, w), int(seed), split
        self.classes, self.palette, self.num_classes = list(CLASSES), PALETTE, NUM_CLASSES
        self.layout = "synthetic"
        if transform is None:
            transform = (
                train_transform(crop=(h, w), scale=(1.0, 1.0), jitter=False)
                if split == "train"
                else eval_transform()
            )
        self.transform = transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.n

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene `i` for display: uint8 image (h, w, 3) and uint8 mask (h, w)."""
        if not -self.n <= i < self.n:
            raise IndexError(f"scene index {i} out of range for {self.n} scenes")
        i %= self.n
        if i not in self._cache:
            rng = np.random.default_rng([self.seed, _SPLITS[self.split], i])
            self._cache[i] = render_scene(rng, self.size)
        image, mask = self._cache[i]
        return image.copy(), mask.copy()

    def load_mask(self, i: int) -> np.ndarray:
        """Label map `i` (uint8, no augmentation); used by `class_weights`."""
        return self.raw(i)[1]

    def _repr_fields(self) -> dict[str, object]:
        return {"n": self.n, "size": self.size, "seed": self.seed, "split": self.split}
