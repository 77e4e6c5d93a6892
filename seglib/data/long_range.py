r"""
# A task where a pixel's label lives far away: the long-range cue

A procedural task on which criss-cross attention *must* work (notebook 03). Each
$64 \times 64$ image holds, on a noise background, one **cue** (a $4 \times 4$ mark,
red or blue) and four grey **objects** ($8 \times 8$ squares, all painted alike). Every
object pixel is labelled "object A" when the cue is red, "object B" when it is blue:
nothing near an object tells which, only the cue does, and the cue is always farther
than `REACH` pixels from every object (Chebyshev distance), more than a small local
network sees. Two objects are **aligned**: the cue's rows lie within the rows of one,
its columns within the columns of the other, so one criss-cross pass, which reads a
pixel's row and column, can carry the cue's colour to them. Two are **far**: more than
`REACH` pixels from the cue in rows *and* in columns, so only two passes reach them
(through the corners where the two crosses meet):

$$\text{far: } d_{\text{row}} > \text{REACH}\ \text{and}\ d_{\text{col}} > \text{REACH},$$

with $d_{\text{row}}$ the smallest distance between a row of the object and a row of the
cue. Every position is even, so at output stride 2 the same holds cell by cell on the
feature map.

Items are `(image, mask)` like the other seglib datasets (`seglib.data.dataset`); a
third map, `regions(i)`, tells which pixels are local (background and cue: their own
look decides), aligned or far, so that accuracy can be reported on each. Chance on the
object pixels is 50 %. Every item is a pure function of `(seed, split, index)`.
"""

from __future__ import annotations

import numpy as np
import torch

from seglib.data.dataset import SegmentationDataset
from seglib.data.transforms import eval_transform

__all__ = [
    "LONG_RANGE_CLASSES",
    "LONG_RANGE_PALETTE",
    "REACH",
    "REGIONS",
    "LongRangeTask",
    "render_long_range",
]

LONG_RANGE_CLASSES: tuple[str, ...] = ("background", "cue", "object A", "object B")
BACKGROUND, CUE, OBJECT_A, OBJECT_B = range(4)
#: label colours for display (not the painted colours)
LONG_RANGE_PALETTE: np.ndarray = np.array(
    [[40, 40, 40], [250, 250, 250], [230, 60, 50], [50, 110, 235]], dtype=np.uint8
)
LONG_RANGE_PALETTE.flags.writeable = False
#: `regions` values: 0 = local, 1 = aligned, 2 = far
REGIONS: tuple[str, ...] = ("local", "aligned", "far")
LOCAL, ALIGNED, FAR = range(3)
#: every object pixel is more than REACH pixels from every cue pixel (Chebyshev), and a
#: far object is more than REACH pixels away in rows and in columns
REACH: int = 16

_SIZE, _CUE, _OBJ = 64, 4, 8  # image, cue and object sides in pixels
_CUE_RGB = {OBJECT_A: (225, 40, 40), OBJECT_B: (40, 80, 225)}  # red cue -> A, blue -> B
_OBJ_GREY = 170.0
_SPLITS = {"train": 0, "val": 1, "test": 2}


def _axis_gap(a0, a1: int, b0: int, b1: int):
    """Smallest |i - j| for i in [a0, a1), j in [b0, b1): 0 when the ranges overlap.

    `a0` and `a1` may be arrays (every candidate position at once)."""
    return np.maximum(0, np.maximum(b0 - (a1 - 1), a0 - (b1 - 1)))


def _place(rng: np.random.Generator, cue: tuple[int, int], kind: str,
           taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """A random even top-left corner for an object of `kind` ('row', 'column' or 'far').

    None when the objects already placed leave no room."""
    c = np.arange(0, _SIZE - _OBJ + 1, 2)
    y, x = c[:, None], c[None, :]  # (n, 1), (1, n): every candidate top-left corner
    dr = _axis_gap(y, y + _OBJ, cue[0], cue[0] + _CUE)  # (n, 1)
    dc = _axis_gap(x, x + _OBJ, cue[1], cue[1] + _CUE)  # (1, n)
    # aligned: the cue's rows (or columns) lie within the object's, the other way is far
    rows_in = (y <= cue[0]) & (cue[0] + _CUE <= y + _OBJ)  # (n, 1)
    cols_in = (x <= cue[1]) & (cue[1] + _CUE <= x + _OBJ)  # (1, n)
    good = {"row": rows_in & (dc > REACH), "column": cols_in & (dr > REACH),
            "far": (dr > REACH) & (dc > REACH)}[kind]  # (n, n)
    for v, u in taken:  # a gap of at least 2 pixels to the objects already placed
        near = (_axis_gap(y, y + _OBJ, v, v + _OBJ) < 3) & (_axis_gap(x, x + _OBJ, u, u + _OBJ) < 3)
        good = good & ~near
    ok = np.argwhere(good)  # (m, 2) in row-major order
    if len(ok) == 0:
        return None
    r, k = ok[int(rng.integers(len(ok)))]
    return int(c[r]), int(c[k])


def render_long_range(rng: np.random.Generator) -> dict:
    """Draw one task image.

    Returns a dict: `"image"` uint8 (64, 64, 3), `"mask"` uint8 (64, 64) in 0..3
    (`LONG_RANGE_CLASSES`), `"regions"` uint8 (64, 64) in 0..2 (`REGIONS`), `"cue"` the
    cue's top-left (row, col), `"kind"` OBJECT_A or OBJECT_B, and `"objects"`, a list of
    (top-left (row, col), "aligned" or "far").
    """
    kind = OBJECT_A if rng.random() < 0.5 else OBJECT_B
    cue = (int(rng.integers(0, (_SIZE - _CUE) // 2 + 1)) * 2,
           int(rng.integers(0, (_SIZE - _CUE) // 2 + 1)) * 2)
    for _ in range(100):  # a cue near a corner leaves little room: draw again if stuck
        objects: list[tuple[tuple[int, int], str]] = []
        for where in ("row", "column", "far", "far"):
            corner = _place(rng, cue, where, [o for o, _ in objects])
            if corner is None:
                break
            objects.append((corner, "far" if where == "far" else "aligned"))
        if len(objects) == 4:
            break
    else:  # never seen at 64x64 (the tests draw thousands of images)
        raise RuntimeError(f"no room for four objects with the cue at {cue}")
    # noise background: grey levels, slightly tinted per pixel
    grey = rng.integers(20, 111, size=(_SIZE, _SIZE, 1)).astype(np.float32)
    image = grey + rng.integers(-8, 9, size=(_SIZE, _SIZE, 3)).astype(np.float32)
    mask = np.full((_SIZE, _SIZE), BACKGROUND, dtype=np.uint8)
    regions = np.full((_SIZE, _SIZE), LOCAL, dtype=np.uint8)
    for (y, x), where in objects:
        sl = (slice(y, y + _OBJ), slice(x, x + _OBJ))
        image[sl] = _OBJ_GREY + rng.integers(-10, 11, size=(_OBJ, _OBJ, 1))
        mask[sl] = kind
        regions[sl] = ALIGNED if where == "aligned" else FAR
    sl = (slice(cue[0], cue[0] + _CUE), slice(cue[1], cue[1] + _CUE))
    image[sl] = np.asarray(_CUE_RGB[kind], np.float32) + rng.integers(-15, 16, (_CUE, _CUE, 1))
    mask[sl] = CUE
    return {
        "image": np.clip(image, 0, 255).astype(np.uint8),
        "mask": mask,
        "regions": regions,
        "cue": cue,
        "kind": kind,
        "objects": objects,
    }


class LongRangeTask(SegmentationDataset):
    """`n` images of the long-range cue task (see the module docstring).

    Args:
        n: number of images.
        seed: base seed; image `i` of a split is a function of `(seed, split, i)` only.
        split: "train", "val" or "test"; each has its own seed stream.
        transform: Albumentations-style pipeline, default `eval_transform()` (ImageNet
            normalisation, no augmentation: a flip would not change the task).

    Items: image float32 (3, 64, 64), mask int64 (64, 64) in 0..3. `regions(i)` gives
    the (64, 64) map of local / aligned / far pixels, `placement(i)` the cue and objects.
    """

    def __init__(self, n: int, seed: int = 0, split: str = "train", transform=None):
        if int(n) < 1:
            raise ValueError(f"n must be >= 1 images, got {n}")
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
        self.n, self.seed, self.split = int(n), int(seed), split
        self.size = (_SIZE, _SIZE)
        self.classes, self.palette = list(LONG_RANGE_CLASSES), LONG_RANGE_PALETTE
        self.num_classes = len(LONG_RANGE_CLASSES)
        self.layout = "long-range"
        self.transform = eval_transform() if transform is None else transform
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.n

    def _item(self, i: int) -> dict:
        if not -self.n <= i < self.n:
            raise IndexError(f"image index {i} out of range for {self.n} images")
        i %= self.n
        if i not in self._cache:
            rng = np.random.default_rng([self.seed, _SPLITS[self.split], i, 0x10E6])
            self._cache[i] = render_long_range(rng)
        return self._cache[i]

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image `i` for display: uint8 image (64, 64, 3) and uint8 mask (64, 64)."""
        item = self._item(i)
        return item["image"].copy(), item["mask"].copy()

    def regions(self, i: int) -> np.ndarray:
        """uint8 (64, 64): 0 local (background, cue), 1 aligned object, 2 far object."""
        return self._item(i)["regions"].copy()

    def placement(self, i: int) -> dict:
        """The cue's top-left (row, col) and kind, and each object's top-left and region."""
        item = self._item(i)
        return {"cue": item["cue"], "kind": LONG_RANGE_CLASSES[item["kind"]],
                "objects": list(item["objects"])}

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All items at once: images (n, 3, 64, 64), masks (n, 64, 64), regions (n, 64, 64).

        The whole task fits in memory (1000 images: 49 MB), and training from stacked
        tensors skips the per-item pipeline.
        """
        pairs = [self[i] for i in range(self.n)]
        images = torch.stack([x for x, _ in pairs])  # (n, 3, 64, 64)
        masks = torch.stack([y for _, y in pairs])  # (n, 64, 64)
        regions = torch.from_numpy(np.stack([self.regions(i) for i in range(self.n)])).long()
        return images, masks, regions

    def _repr_fields(self) -> dict[str, object]:
        return {"n": self.n, "seed": self.seed, "split": self.split}
