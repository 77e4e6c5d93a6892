r"""
# CamVid: road scenes labelled pixel by pixel

[CamVid](http://mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid/) (Brostow et al.,
2008) holds 701 frames of driving video from Cambridge at 360x480 with a class for every
pixel. Most benchmarks use the 11-class version of
[SegNet](https://arxiv.org/abs/1511.00561) (train 367, val 101, test 233): Sky, Building,
Pole, Road, Pavement, Tree, SignSymbol, Fence, Car, Pedestrian, Bicyclist, plus 11 =
void, which we map to the ignore index 255.

Two folder layouts are detected automatically:

- **SegNet** (`layout == "segnet"`): `{split}/` images and `{split}annot/` single-channel
  label PNGs with values 0..10 and 11 = void, paired by file name;
- **colour** (`layout == "colour"`): `{split}/` images, `{split}_labels/<name>_L.png` RGB
  colour masks and `class_dict.csv` (`name,r,g,b`); each colour becomes its row index
  (a class named "Void" becomes 255), and classes, palette and their number come from
  the CSV.

Notebook `05_camvid_data.ipynb` loads the data, shows the palette, the class
frequencies and the weights, and the train/eval pipelines.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seglib.data.classes import CLASSES, NUM_CLASSES, PALETTE
from seglib.data.dataset import SegmentationDataset
from seglib.data.transforms import IGNORE_INDEX, eval_transform, train_transform

__all__ = ["CamVid"]

_VOID_SEGNET = 11  # label value of void in the SegNet layout
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
_HINT = (
    "Expected the SegNet layout ({s}/ + {s}annot/) or the colour layout ({s}/ + {s}_labels/ "
    "+ class_dict.csv). Get the SegNet layout with seglib.data.download_camvid(root=...)."
)


def _list_images(folder: Path) -> dict[str, Path]:
    """Map file stem -> path for the image files directly inside `folder`; two files
    for one stem (`X.png` and `X.jpg`) are an error naming both, not a silent pick."""
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."):
            if p.stem in found:
                raise ValueError(f"{folder}: two files for one image, {found[p.stem].name} and "
                                 f"{p.name}: keep one of them")
            found[p.stem] = p
    return found


def _read_class_dict(path: Path) -> tuple[list[str], np.ndarray]:
    """Read `class_dict.csv` (`name,r,g,b`) into names and an (N, 3) uint8 colour array."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM is no header
            rows = list(csv.DictReader(f))
        names = [r["name"].strip() for r in rows]
        colours = np.array([[int(r[c]) for c in "rgb"] for r in rows], dtype=np.int64)
    except (KeyError, ValueError, TypeError, csv.Error) as e:
        raise ValueError(
            f"{path}: expected a CSV with header name,r,g,b and integer colours ({e!r})"
        ) from None
    if not rows or colours.min() < 0 or colours.max() > 255:
        raise ValueError(f"{path}: expected at least one row with colours in 0..255")
    codes = colours @ np.array([65536, 256, 1])
    if len(set(codes.tolist())) != len(codes):
        raise ValueError(f"{path}: two classes share a colour")
    return names, colours.astype(np.uint8)


def _open(path: Path) -> Image.Image:
    """Open an image fully (so that a truncated file fails here) or raise a ValueError."""
    try:
        img = Image.open(path)
        img.load()
        return img
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image file {path}: {e}") from None


class CamVid(SegmentationDataset):
    """CamVid split as a torch Dataset of `(image, mask)` pairs.

    Args:
        root: folder holding the split folders (e.g. `data/CamVid`).
        split: `"train"`, `"val"` or `"test"` (any folder name works).
        transform: Albumentations-style pipeline called as `t(image=, mask=)`;
            `None` picks `train_transform()` for "train", else `eval_transform()`.

    Items: image float32 (3, H, W) normalised with ImageNet mean/std, mask int64 (H, W)
    with class indices and 255 for void. Attributes: `classes`, `palette` ((K, 3)
    uint8), `num_classes`, `layout` ("segnet" | "colour"), `images`, `labels` (paths),
    `sequences` (the drive each frame was filmed on).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transform: Any = None):
        self.root = Path(root)
        self.split = split
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(
                f"CamVid root {self.root} is a file, not a folder: give the folder that holds "
                f"{split}/. " + _HINT.format(s=split)
            )
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"CamVid root {self.root} does not exist. " + _HINT.format(s=split)
            )
        image_dir = self.root / split
        if (self.root / f"{split}annot").is_dir():
            self.layout, label_dir, suffix = "segnet", self.root / f"{split}annot", ""
            self.classes, self.palette = list(CLASSES), PALETTE
            self._colour_lut: tuple[np.ndarray, np.ndarray] | None = None
        elif (self.root / f"{split}_labels").is_dir():
            self.layout, label_dir, suffix = "colour", self.root / f"{split}_labels", "_L"
            self._init_colour_classes(self.root / "class_dict.csv")
        else:
            raise FileNotFoundError(
                f"CamVid split {split!r} not found in {self.root}: no {split}annot/ or "
                f"{split}_labels/ folder. " + _HINT.format(s=split)
            )
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"CamVid split {split!r}: image folder {image_dir} is missing. "
                + _HINT.format(s=split)
            )
        self.num_classes = len(self.classes)
        self.images, self.labels = self._pair_files(image_dir, label_dir, suffix)
        if transform is None:
            transform = train_transform() if split == "train" else eval_transform()
        self.transform = transform

    def _init_colour_classes(self, csv_path: Path) -> None:
        """Classes and palette from class_dict.csv; a 'Void' row maps to 255."""
        if not csv_path.is_file():
            raise FileNotFoundError(
                f"{csv_path} is missing: the colour layout needs class_dict.csv (name,r,g,b)"
            )
        names, colours = _read_class_dict(csv_path)
        keep = [i for i, n in enumerate(names) if n.lower() != "void"]
        self.classes = [names[i] for i in keep]
        self.palette = colours[keep]
        index = np.full(len(names), IGNORE_INDEX, dtype=np.uint8)
        index[keep] = np.arange(len(keep))
        codes = colours.astype(np.int64) @ np.array([65536, 256, 1])
        order = np.argsort(codes)
        self._colour_lut = (codes[order], index[order])  # sorted codes -> class index

    def _pair_files(self, image_dir: Path, label_dir: Path, suffix: str):
        """Pair images and labels by file stem; check every pair's header and size."""
        images = _list_images(image_dir)
        labels = {k.removesuffix(suffix): p for k, p in _list_images(label_dir).items()}
        if suffix:  # colour layout: every label must be named <image>_L
            odd = [p.name for k, p in _list_images(label_dir).items() if not k.endswith(suffix)]
            if odd:
                raise ValueError(f"{label_dir}: expected <name>_L.png label files, got {odd[:10]}")
        if not images:
            raise FileNotFoundError(f"no image files in {image_dir}")
        no_label = sorted(set(images) - set(labels))
        no_image = sorted(set(labels) - set(images))
        if no_label:
            raise ValueError(
                f"{len(no_label)} image(s) in {image_dir} have no label in {label_dir}: "
                + ", ".join(images[k].name for k in no_label[:10])
            )
        if no_image:
            raise ValueError(
                f"{len(no_image)} label(s) in {label_dir} have no image in {image_dir}: "
                + ", ".join(labels[k].name for k in no_image[:10])
            )
        keys = sorted(images)
        for k in keys:
            sizes = []
            for p in (images[k], labels[k]):
                try:
                    with Image.open(p) as im:
                        sizes.append(im.size)
                except (OSError, SyntaxError, ValueError) as e:
                    raise ValueError(f"cannot read image file {p}: {e}") from None
            if sizes[0] != sizes[1]:
                raise ValueError(
                    f"size mismatch: image {images[k]} is {sizes[0][0]}x{sizes[0][1]} but "
                    f"label {labels[k]} is {sizes[1][0]}x{sizes[1][1]} (width x height)"
                )
        return [images[k] for k in keys], [labels[k] for k in keys]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def sequences(self) -> list[str]:
        """The video sequence (drive) of every frame, read from its file name.

        CamVid names a frame `<sequence>_<frame>.png` (`0001TP_006690.png`,
        `Seq05VD_f00000.png`); the splits share some drives and not others, which is
        why val and test can disagree. A name without `_` is its own sequence.
        """
        return [path.stem.split("_")[0] for path in self.images]

    def load_image(self, i: int) -> np.ndarray:
        """The raw RGB image `i` as uint8 (H, W, 3); 16-bit greyscale is scaled to 8 bits
        (PIL's `convert("RGB")` would clip it: every value above 255 becomes white)."""
        img = _open(self.images[i])
        if img.mode.startswith("I"):  # "I;16", "I;16B", "I" (32-bit): 16-bit greyscale
            grey = np.asarray(img).astype(np.float64)  # (H, W), 0..65535
            if grey.min(initial=0) < 0 or grey.max(initial=0) > 65535:
                raise ValueError(f"{self.images[i]}: expected an 8- or 16-bit image, got "
                                 f"values {grey.min():g}..{grey.max():g}")
            grey = np.round(grey / 257).astype(np.uint8)  # 65535 -> 255
            return np.repeat(grey[..., None], 3, axis=2)  # (H, W, 3)
        return np.asarray(img.convert("RGB"))

    def load_mask(self, i: int) -> np.ndarray:
        """The label map `i` as uint8 (H, W) class indices, 255 = void (no augmentation)."""
        path = self.labels[i]
        img = _open(path)
        if self.layout == "segnet":
            if img.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(
                    f"{path}: expected a single-channel label PNG (values 0..10, 11 = void), "
                    f"got mode {img.mode}"
                )
            raw = np.asarray(img)
            if raw.max(initial=0) > 255 or raw.min(initial=0) < 0:
                raise ValueError(f"{path}: label values must be 0..11 or 255")
            raw = raw.astype(np.uint8)
            lut = np.full(256, 254, dtype=np.uint8)  # 254 marks an invalid value
            lut[:NUM_CLASSES] = np.arange(NUM_CLASSES)
            lut[[_VOID_SEGNET, IGNORE_INDEX]] = IGNORE_INDEX
            mask = lut[raw]
            if (mask == 254).any():
                bad = sorted(set(np.unique(raw[mask == 254]).tolist()))
                raise ValueError(f"{path}: label values must be 0..11 or 255, found {bad[:10]}")
            return mask
        if img.mode not in ("RGB", "RGBA", "P"):
            raise ValueError(f"{path}: expected an RGB colour mask, got mode {img.mode}")
        rgb = np.asarray(img.convert("RGB")).astype(np.int64)
        codes = rgb @ np.array([65536, 256, 1])  # (H, W) one integer per colour
        sorted_codes, index = self._colour_lut
        pos = np.searchsorted(sorted_codes, codes).clip(0, len(sorted_codes) - 1)
        known = sorted_codes[pos] == codes
        if not known.all():
            y, x = np.argwhere(~known)[0]
            raise ValueError(
                f"{path}: colour {tuple(int(c) for c in rgb[y, x])} at pixel (row {y}, col {x}) "
                f"is not in class_dict.csv ({int((~known).sum())} pixels with unknown colours)"
            )
        return index[pos]

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item `i` without transform: uint8 image (H, W, 3) and uint8 mask (H, W)."""
        return self.load_image(i), self.load_mask(i)

    def _repr_fields(self) -> dict[str, object]:
        return {"root": str(self.root), "split": self.split, "layout": self.layout,
                "n": len(self), "num_classes": self.num_classes}
